/**
 * NetBird's own server (v0.77.1, built by scripts/install-netbird.sh into .tools/netbird/bin) and its CLI client,
 * run by a test inside network namespaces the test made, so that nothing either does can leave the machine.
 *
 * The address peers are told: `http://10.0.2.100:33073` (NETBIRD_ADDRESS below), the same from everywhere.
 *   - the server's namespace holds only loopback, with 10.0.2.100/32 on it; the server listens there;
 *   - every peer's namespace holds only loopback with 10.0.2.100/32 too, and a socat listening on that address
 *     that runs, per connection, `ip netns exec <server ns> socat STDIO TCP:10.0.2.100:33073`;
 *   - a QEMU guest on user-mode networking reaches it with `guestfwd=tcp:10.0.2.100:33073-cmd:<that command>`
 *     (`guestForwardCommand`): 10.0.2.100 lies in QEMU's own 10.0.2.0/24, and the command runs on the host.
 * So one URL works in the server's namespace, in each peer's and in a guest, and no address is ever put on the
 * root namespace's interfaces. The REST API reaches the test process (root namespace) through a socat on
 * 127.0.0.1:<free port> that runs the same command (`apiUrl`). Management (gRPC), signal and the relay share the
 * one port, so peers reach each other through the server's relay (WebSocket over TCP); STUN/UDP is not needed.
 *
 * A new account is set up through the API (`POST /api/setup`, which works once): the owner, with a personal access
 * token (handed out only with NB_SETUP_PAT_ENABLED=true in the server's environment; NB_DISABLE_GEOLOCATION=true
 * keeps it from trying to download a GeoLite database). The server then holds what a new NetBird account holds, including its `Default` all-to-all policy.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { UserPeerServer } from './netbirdUserPeer';
import { freePort } from './ports';

const ROOT = join(__dirname, '..', '..');
export const NETBIRD_BIN_DIR = join(ROOT, '.tools', 'netbird', 'bin');
export const NETBIRD_SERVER_BIN = join(NETBIRD_BIN_DIR, 'netbird-server');
export const NETBIRD_CLIENT_BIN = join(NETBIRD_BIN_DIR, 'netbird');
/** Inside QEMU's user-mode network (10.0.2.0/24), clear of its gateway (.2), DNS (.3) and first guest (.15). */
export const NETBIRD_ADDRESS = '10.0.2.100';
export const NETBIRD_PORT = 33073;

/** Why the real server cannot run here, or undefined when it can (binaries built, root, `ip` and `socat`). */
export function netbirdUnavailable(): string | undefined {
  if (!existsSync(NETBIRD_SERVER_BIN) || !existsSync(NETBIRD_CLIENT_BIN)) return `NetBird's server and client are not built in ${NETBIRD_BIN_DIR}: run bash scripts/install-netbird.sh`;
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  for (const tool of ['ip', 'socat']) if (spawnSync(tool, ['-V'], { stdio: 'ignore' }).error) return `'${tool}' is not installed (apt-get install -y iproute2 socat)`;
  return undefined;
}

/** The host command (root namespace) that connects its stdin/stdout to the server: what a QEMU guestfwd runs. */
export function guestForwardCommand(serverNamespace: string): string {
  return `ip netns exec ${serverNamespace} socat STDIO TCP:${NETBIRD_ADDRESS}:${NETBIRD_PORT}`;
}

/** socat's EXEC address running `command`: socat splits addresses at ':', so the command's own are escaped. */
function socatExec(command: string): string {
  return `EXEC:${command.replace(/[:,]/g, (c) => `\\${c}`)}`;
}

export interface NetbirdServer {
  /** The REST API's origin as the test process reaches it: `http://127.0.0.1:<port>`. */
  apiUrl: string;
  /** The URL peers are told (the server's exposedAddress): `http://10.0.2.100:33073`. */
  managementUrl: string;
  /** The owner's personal access token (`nbp_…`). */
  token: string;
  owner: { email: string; password: string };
  /** The namespace the server runs in. */
  namespace: string;
  /** For a QEMU guest: `guestfwd=tcp:10.0.2.100:33073-cmd:<this>`. */
  guestForwardCommand: string;
  /** A NetBird client joining with `setupKey`, in a namespace of its own. Resolves once it has started. */
  startPeer(opts: { name: string; setupKey: string }): Promise<NetbirdPeer>;
  /**
   * A namespace named `name` in which `managementUrl` reaches the server, with no client in it: what a machine that
   * signs in as a user (test/support/netbirdUserPeer.ts) runs in. Closed by `stop` if the caller has not.
   */
  openPeerNamespace: UserPeerServer['openPeerNamespace'];
  /** The server's log so far (for a failing test's message). */
  log(): string;
  /** Stops every peer, the server and the bridge, and removes every namespace and file this harness made. */
  stop(): Promise<void>;
}

export interface NetbirdPeer {
  name: string;
  namespace: string;
  /** Runs `command` inside the peer's namespace (e.g. `nc -z <ip> 22`, `ssh …`) and waits for it. */
  exec(command: string, args: string[], opts?: { timeoutMs?: number; input?: string }): { status: number | null; stdout: string; stderr: string };
  /** The client's log so far. */
  log(): string;
  stop(): Promise<void>;
}

export interface NetbirdServerOptions {
  /** Namespace names start with it (the caller's branch or test name); a counter and the pid make them unique. */
  prefix: string;
  /** NetBird's own API rate limiter (NB_API_RATE_LIMITING_*): requests per minute and burst, per token. */
  rateLimit?: { requestsPerMinute: number; burst: number };
  owner?: { email: string; password: string; name?: string };
}

let namespaces = 0;

export async function startNetbirdServer(opts: NetbirdServerOptions): Promise<NetbirdServer> {
  const why = netbirdUnavailable();
  if (why) throw new Error(why);
  removeOrphans(opts.prefix);
  const base = `${opts.prefix}-${process.pid}-${++namespaces}`;
  const dir = mkdtempSync(join(tmpdir(), 'pveflow-netbird-'));
  const cleanup: Array<() => Promise<void> | void> = [() => rmSync(dir, { recursive: true, force: true })];
  const stopAll = () => unwind(cleanup);
  try {
    const namespace = `${base}-srv`;
    makeNamespace(namespace, cleanup);
    const managementUrl = `http://${NETBIRD_ADDRESS}:${NETBIRD_PORT}`;
    const dataDir = join(dir, 'data');
    mkdirSync(dataDir);
    const config = {
      server: {
        listenAddress: `${NETBIRD_ADDRESS}:${NETBIRD_PORT}`,
        exposedAddress: managementUrl,
        stunPorts: [3478],
        metricsPort: 9090,
        healthcheckAddress: '127.0.0.1:9000',
        logLevel: 'info',
        logFile: 'console',
        authSecret: randomBytes(24).toString('base64url'),
        dataDir,
        disableAnonymousMetrics: true,
        disableGeoliteUpdate: true,
        auth: { issuer: `${managementUrl}/oauth2`, dashboardRedirectURIs: [`${managementUrl}/nb-auth`], cliRedirectURIs: ['http://localhost:53000/'] },
        // Without a fixed key a new one is made at every start and the store cannot be read back.
        store: { engine: 'sqlite', encryptionKey: randomBytes(32).toString('base64') },
      },
    };
    // JSON is YAML: the server reads it as its YAML config.
    const configFile = join(dir, 'config.yaml');
    writeFileSync(configFile, JSON.stringify(config, null, 2), { mode: 0o600 });
    const rateLimit: Record<string, string> = opts.rateLimit
      ? { NB_API_RATE_LIMITING_ENABLED: 'true', NB_API_RATE_LIMITING_RPM: String(opts.rateLimit.requestsPerMinute), NB_API_RATE_LIMITING_BURST: String(opts.rateLimit.burst) }
      : {};
    const server = startProcess(namespace, NETBIRD_SERVER_BIN, ['--config', configFile], { NB_DISABLE_GEOLOCATION: 'true', NB_SETUP_PAT_ENABLED: 'true', ...rateLimit }, join(dir, 'server.log'), cleanup);

    const apiPort = await freePort();
    startProcess(undefined, 'socat', [`TCP-LISTEN:${apiPort},bind=127.0.0.1,reuseaddr,fork`, socatExec(guestForwardCommand(namespace))], {}, join(dir, 'bridge.log'), cleanup);
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    const log = () => readLog(join(dir, 'server.log'));

    await waitUntil(
      async () => {
        if (server.exitCode !== null) throw new Error(`netbird-server exited (${server.exitCode}):\n${log().slice(-3000)}`);
        const res = await fetch(`${apiUrl}/api/instance`, { signal: AbortSignal.timeout(2_000) }).catch(() => undefined);
        return res?.ok === true;
      },
      30_000,
      () => `netbird-server did not answer /api/instance within 30 s:\n${log().slice(-3000)}`,
    );

    const owner = { email: opts.owner?.email ?? 'owner@pveflow.test', password: opts.owner?.password ?? randomBytes(12).toString('base64url') };
    const setup = await fetch(`${apiUrl}/api/setup`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: owner.email, password: owner.password, name: opts.owner?.name ?? 'pveflow test owner', create_pat: true, pat_expire_in: 1 }),
    });
    const answer = (await setup.json().catch(() => ({}))) as { personal_access_token?: string };
    if (!setup.ok || !answer.personal_access_token) throw new Error(`POST /api/setup answered ${setup.status}: ${JSON.stringify(answer)}`);

    const peers: NetbirdPeer[] = [];
    return {
      apiUrl,
      managementUrl,
      token: answer.personal_access_token,
      owner,
      namespace,
      guestForwardCommand: guestForwardCommand(namespace),
      log,
      startPeer: async ({ name, setupKey }) => {
        const peer = await startPeer(`${base}-p${peers.length + 1}`, namespace, dir, name, setupKey, managementUrl);
        peers.push(peer);
        return peer;
      },
      openPeerNamespace: async (name) => {
        const own: Array<() => Promise<void> | void> = [];
        const close = () => unwind(own);
        cleanup.push(close);
        try {
          makeBridgedNamespace(name, namespace, join(dir, `${name}-bridge.log`), own);
        } catch (err) {
          await close();
          throw err;
        }
        return { name, close };
      },
      stop: async () => {
        for (const peer of peers.splice(0)) await peer.stop();
        await stopAll();
      },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

async function startPeer(namespace: string, serverNamespace: string, dir: string, name: string, setupKey: string, managementUrl: string): Promise<NetbirdPeer> {
  const cleanup: Array<() => Promise<void> | void> = [];
  const peerDir = join(dir, namespace);
  mkdirSync(peerDir);
  cleanup.push(() => rmSync(peerDir, { recursive: true, force: true }));
  makeBridgedNamespace(namespace, serverNamespace, join(peerDir, 'bridge.log'), cleanup);
  const logFile = join(peerDir, 'client.log');
  // HOME and NB_STATE_DIR: the client's profiles and state stay in the peer's own directory.
  const client = startProcess(
    namespace,
    NETBIRD_CLIENT_BIN,
    ['up', '--foreground-mode', '--setup-key', setupKey, '--management-url', managementUrl, '--hostname', name, '--daemon-addr', `unix://${peerDir}/nb.sock`, '--log-file', 'console', '--disable-dns'],
    { NB_STATE_DIR: peerDir, HOME: peerDir },
    logFile,
    cleanup,
  );
  const stop = () => unwind(cleanup);
  await sleep(200);
  if (client.exitCode !== null) {
    const log = readLog(logFile);
    await stop();
    throw new Error(`netbird up for ${name} exited (${client.exitCode}):\n${log.slice(-3000)}`);
  }
  return {
    name,
    namespace,
    log: () => readLog(logFile),
    exec: (command, args, o = {}) => {
      const r = spawnSync('ip', ['netns', 'exec', namespace, command, ...args], { encoding: 'utf8', timeout: o.timeoutMs ?? 10_000, input: o.input });
      return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
    },
    stop,
  };
}

/** A namespace (as makeNamespace) whose NETBIRD_ADDRESS is forwarded to the server's namespace the way a guest's guestfwd is. */
function makeBridgedNamespace(name: string, serverNamespace: string, bridgeLog: string, cleanup: Array<() => Promise<void> | void>): void {
  makeNamespace(name, cleanup);
  startProcess(name, 'socat', [`TCP-LISTEN:${NETBIRD_PORT},bind=${NETBIRD_ADDRESS},reuseaddr,fork`, socatExec(guestForwardCommand(serverNamespace))], {}, bridgeLog, cleanup);
}

/** Runs (and empties) the clean-up steps, last first, best effort: one that fails does not keep the others from running. */
async function unwind(steps: Array<() => Promise<void> | void>): Promise<void> {
  for (const step of steps.splice(0).reverse()) {
    try {
      await step();
    } catch {
      // Best effort: the next step still runs, so no namespace or process is left behind.
    }
  }
}

/**
 * Namespaces of this prefix left by a test process that died before its stop (their names carry its pid): their
 * processes are killed and the namespaces removed. Those of a process still running are left alone.
 */
function removeOrphans(prefix: string): void {
  const listed = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
  for (const name of listed.split('\n').map((l) => l.split(' ')[0] ?? '')) {
    const pid = Number(name.startsWith(`${prefix}-`) ? name.slice(prefix.length + 1).split('-')[0] : NaN);
    if (!Number.isInteger(pid) || pid <= 0 || alive(pid)) continue;
    for (const orphan of spawnSync('ip', ['netns', 'pids', name], { encoding: 'utf8' }).stdout.split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(orphan), 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
    spawnSync('ip', ['netns', 'del', name]);
    rmSync(join('/etc/netns', name), { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A namespace with only loopback, holding NETBIRD_ADDRESS. `/etc/netns/<name>/resolv.conf` is bind-mounted by
 * `ip netns exec` over /etc/resolv.conf: whatever a process inside writes there stays out of the host's file.
 */
function makeNamespace(name: string, cleanup: Array<() => Promise<void> | void>): void {
  run('ip', ['netns', 'add', name]);
  cleanup.push(() => {
    // Every process still in it is one this harness started.
    for (const pid of spawnSync('ip', ['netns', 'pids', name], { encoding: 'utf8' }).stdout.split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
    run('ip', ['netns', 'del', name]);
  });
  const etc = join('/etc/netns', name);
  mkdirSync(etc, { recursive: true });
  cleanup.push(() => rmSync(etc, { recursive: true, force: true }));
  writeFileSync(join(etc, 'resolv.conf'), 'nameserver 127.0.0.1\n');
  run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  run('ip', ['-n', name, 'addr', 'add', `${NETBIRD_ADDRESS}/32`, 'dev', 'lo']);
}

/** Starts `bin` (in `namespace`, when given) in a process group of its own, stopped (TERM, then KILL) at cleanup. */
function startProcess(namespace: string | undefined, bin: string, args: string[], env: Record<string, string>, logFile: string, cleanup: Array<() => Promise<void> | void>): ChildProcess {
  const out = openSync(logFile, 'a');
  const [cmd, argv] = namespace ? ['ip', ['netns', 'exec', namespace, bin, ...args]] : [bin, args];
  const child = spawn(cmd, argv, { env: { ...process.env, ...env }, stdio: ['ignore', out, out], detached: true });
  closeSync(out);
  cleanup.push(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    process.kill(-child.pid!, 'SIGTERM');
    const done = await Promise.race([exited.then(() => true), sleep(5_000).then(() => false)]);
    if (!done) {
      process.kill(-child.pid!, 'SIGKILL');
      await exited;
    }
  });
  return child;
}

function readLog(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr || r.error?.message}`);
}

async function waitUntil(ready: () => Promise<boolean>, timeoutMs: number, timeoutMessage: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ready())) {
    if (Date.now() > deadline) throw new Error(timeoutMessage());
    await sleep(200);
  }
}
