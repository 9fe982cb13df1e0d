import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createNetbirdUser, DEFAULT_NETBIRD_CLIENT_BIN, listPeers, loginPeerAsUser, type UserPeer, type UserPeerServer } from './support/netbirdUserPeer';
import { freePort } from './support/ports';

/**
 * A consultant's machine signed in as a NetBird user through the server's own identity provider (Dex), against
 * NetBird's real server v0.77.1: the peer is the user's, carries the user's auto-groups, and `stop` leaves nothing.
 */
const SERVER_BIN = join(__dirname, '..', '.tools', 'netbird', 'bin', 'netbird-server');
const unavailable =
  !existsSync(SERVER_BIN) || !existsSync(DEFAULT_NETBIRD_CLIENT_BIN)
    ? 'NetBird is not built in .tools/netbird/bin: run bash scripts/install-netbird.sh'
    : process.getuid?.() !== 0
      ? 'network namespaces need root'
      : undefined;
if (unavailable && process.env.CI) throw new Error(`${unavailable}: CI must provide it`);

describe('a NetBird user signs a machine in through Dex', { skip: unavailable }, () => {
  let server: PrivateNetbirdServer;
  const peers: UserPeer[] = [];

  before(async () => {
    server = await startPrivateNetbirdServer('consultant-e2e');
  });
  after(async () => {
    for (const p of peers) await p.stop();
    await server?.stop();
  });

  async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${server.apiUrl}${path}`, {
      method,
      headers: { authorization: `Token ${server.token}`, 'content-type': 'application/json', accept: 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    assert.ok(res.ok, `${method} ${path} answered ${res.status}: ${text}`);
    return JSON.parse(text) as T;
  }

  it("registers each user's machine as that user's peer, in that user's auto-groups", async () => {
    const groupA = await api<{ id: string }>('POST', '/api/groups', { name: 'consultants-a' });
    const groupB = await api<{ id: string }>('POST', '/api/groups', { name: 'consultants-b' });
    const alice = await createNetbirdUser(server, { email: 'alice@pveflow.test', name: 'Alice', autoGroups: [groupA.id] });
    const bob = await createNetbirdUser(server, { email: 'bob@pveflow.test', name: 'Bob', autoGroups: [groupB.id] });

    const laptopA = await loginPeerAsUser({ server, namespacePrefix: 'consultant-e2e', email: alice.email, password: alice.password, hostname: 'alice-laptop' });
    peers.push(laptopA);
    const laptopB = await loginPeerAsUser({ server, namespacePrefix: 'consultant-e2e', email: bob.email, password: bob.password, hostname: 'bob-laptop' });
    peers.push(laptopB);

    const all = await listPeers(server);
    const a = all.find((p) => p.id === laptopA.peer.id);
    const b = all.find((p) => p.id === laptopB.peer.id);
    assert.equal(a?.user_id, alice.id, "alice's machine is alice's peer");
    assert.equal(b?.user_id, bob.id, "bob's machine is bob's peer");
    assert.deepEqual(a.groups.map((g) => g.name).sort(), ['All', 'consultants-a']);
    assert.deepEqual(b.groups.map((g) => g.name).sort(), ['All', 'consultants-b']);

    // The client in the namespace holds the address the server gave it: the machine is on the VPN.
    const addr = await laptopA.exec('ip', ['-4', '-o', 'addr', 'show']);
    assert.match(addr.stdout, new RegExp(`inet ${a.ip.replaceAll('.', '\\.')}/`), addr.stdout);

    // A group added to the user's auto_groups later reaches the machine already signed in (how pveflow grants a
    // consultant whose laptop joined before the request existed).
    const later = await api<{ id: string }>('POST', '/api/groups', { name: 'pveflow-consultant-alice' });
    await api('PUT', `/api/users/${alice.id}`, { role: 'user', auto_groups: [groupA.id, later.id], is_blocked: false });
    const regrouped = (await listPeers(server)).find((p) => p.id === laptopA.peer.id);
    assert.deepEqual(regrouped?.groups.map((g) => g.name).sort(), ['All', 'consultants-a', 'pveflow-consultant-alice']);

    // The machines reach each other over the tunnel (the new account's Default policy lets every peer reach every
    // peer): what the end-to-end test's SSH from the consultant's machine relies on.
    const listener = laptopB.exec('timeout', ['30', 'socat', `TCP-LISTEN:7777,bind=${b.ip}`, 'SYSTEM:echo from-bob'], { timeoutMs: 35_000 });
    let answer = '';
    for (let i = 0; i < 20 && answer !== 'from-bob'; i++) {
      await sleep(500);
      answer = (await laptopA.exec('socat', ['-T', '5', '-', `TCP:${b.ip}:7777,connect-timeout=5`], { timeoutMs: 10_000 })).stdout.trim();
    }
    assert.equal(answer, 'from-bob', `alice's machine did not reach bob's over NetBird:\n${laptopA.log().slice(-2000)}`);
    await listener;
  });

  it('refuses a wrong password, with what Dex said', async () => {
    const carol = await createNetbirdUser(server, { email: 'carol@pveflow.test', name: 'Carol', autoGroups: [] });
    const namespacesBefore = namespacesOf(server);
    await assert.rejects(
      loginPeerAsUser({ server, namespacePrefix: 'consultant-e2e', email: carol.email, password: carol.password + 'x', hostname: 'carol-laptop', timeoutMs: 30_000 }),
      /e-mail and password were refused/,
    );
    assert.deepEqual(namespacesOf(server), namespacesBefore, 'the failed login left no namespace behind');
  });

  it('stop ends the client and removes its namespace; the peer stays, disconnected', async () => {
    const laptop = peers.shift()!;
    await laptop.stop();
    assert.ok(!namespacesOf(server).includes(laptop.namespace));
    for (let i = 0; i < 40; i++) {
      const p = (await listPeers(server)).find((x) => x.id === laptop.peer.id);
      if (p && !p.connected) return;
      await sleep(250);
    }
    assert.fail(`${laptop.hostname} still shows connected 10 s after stop`);
  });
});

function namespacesOf(server: PrivateNetbirdServer): string[] {
  return spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .stdout.split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => n.startsWith(server.prefix));
}

/**
 * A minimal private harness (the shared one, test/support/netbirdServer.ts, is on another branch): NetBird's server
 * in a namespace holding only loopback with 10.0.2.100 on it; each peer namespace holds 10.0.2.100 too, with a socat
 * that carries each connection into the server's namespace; this process reaches the API through a socat on
 * 127.0.0.1. One URL, http://10.0.2.100:33073, is the server everywhere, and nothing can leave the machine.
 */
interface PrivateNetbirdServer extends UserPeerServer {
  prefix: string;
  namespace: string;
  stop(): Promise<void>;
}

const ADDRESS = '10.0.2.100';
const PORT = 33073;

async function startPrivateNetbirdServer(branch: string): Promise<PrivateNetbirdServer> {
  const prefix = `${branch}-${process.pid}`;
  const dir = mkdtempSync(join(tmpdir(), 'pveflow-nb-user-server-'));
  const cleanup: Array<() => Promise<void> | void> = [() => rmSync(dir, { recursive: true, force: true })];
  const stop = async () => {
    for (const step of cleanup.splice(0).reverse()) await Promise.resolve(step()).catch(() => undefined);
  };
  // socat splits an address at ':', the command's own included: they are escaped.
  const bridge = (serverNs: string) => `EXEC:ip netns exec ${serverNs} socat STDIO TCP\\:${ADDRESS}\\:${PORT}`;
  try {
    const namespace = `${prefix}-srv`;
    makeNamespace(namespace, cleanup);
    const managementUrl = `http://${ADDRESS}:${PORT}`;
    mkdirSync(join(dir, 'data'));
    const config = {
      server: {
        listenAddress: `${ADDRESS}:${PORT}`,
        exposedAddress: managementUrl,
        stunPorts: [3478],
        metricsPort: 9090,
        healthcheckAddress: '127.0.0.1:9000',
        logLevel: 'info',
        logFile: 'console',
        authSecret: randomBytes(24).toString('base64url'),
        dataDir: join(dir, 'data'),
        disableAnonymousMetrics: true,
        disableGeoliteUpdate: true,
        auth: { issuer: `${managementUrl}/oauth2`, dashboardRedirectURIs: [`${managementUrl}/nb-auth`], cliRedirectURIs: ['http://localhost:53000/'] },
        store: { engine: 'sqlite', encryptionKey: randomBytes(32).toString('base64') },
      },
    };
    writeFileSync(join(dir, 'config.yaml'), JSON.stringify(config), { mode: 0o600 });
    const serverProcess = startProcess(
      ['ip', 'netns', 'exec', namespace, SERVER_BIN, '--config', join(dir, 'config.yaml')],
      { NB_DISABLE_GEOLOCATION: 'true', NB_SETUP_PAT_ENABLED: 'true' },
      join(dir, 'server.log'),
      cleanup,
    );
    const apiPort = await freePort();
    startProcess(['socat', `TCP-LISTEN:${apiPort},bind=127.0.0.1,reuseaddr,fork`, bridge(namespace)], {}, join(dir, 'bridge.log'), cleanup);
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    const serverLog = () => (existsSync(join(dir, 'server.log')) ? readFileSync(join(dir, 'server.log'), 'utf8').slice(-3000) : '');
    for (let i = 0; ; i++) {
      if (serverProcess.exitCode !== null) throw new Error(`netbird-server exited:\n${serverLog()}`);
      if ((await fetch(`${apiUrl}/api/instance`, { signal: AbortSignal.timeout(2_000) }).catch(() => undefined))?.ok) break;
      if (i > 150) throw new Error(`netbird-server did not answer within 30 s:\n${serverLog()}`);
      await sleep(200);
    }
    const setup = await fetch(`${apiUrl}/api/setup`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'owner@pveflow.test', password: randomBytes(12).toString('base64url'), name: 'owner', create_pat: true, pat_expire_in: 1 }),
    });
    const { personal_access_token: token } = (await setup.json()) as { personal_access_token?: string };
    if (!token) throw new Error(`POST /api/setup answered ${setup.status}`);
    return {
      prefix,
      namespace,
      managementUrl,
      apiUrl,
      token,
      stop,
      openPeerNamespace: async (name) => {
        const own: Array<() => Promise<void> | void> = [];
        makeNamespace(name, own);
        startProcess(['ip', 'netns', 'exec', name, 'socat', `TCP-LISTEN:${PORT},bind=${ADDRESS},reuseaddr,fork`, bridge(namespace)], {}, join(dir, `${name}-bridge.log`), own);
        const close = async () => {
          for (const step of own.splice(0).reverse()) await Promise.resolve(step()).catch(() => undefined);
        };
        cleanup.push(close);
        return { name, close };
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

function makeNamespace(name: string, cleanup: Array<() => Promise<void> | void>): void {
  mustRun('ip', ['netns', 'add', name]);
  cleanup.push(() => {
    // Whatever still runs in it was started by this test.
    for (const pid of spawnSync('ip', ['netns', 'pids', name], { encoding: 'utf8' }).stdout.split(/\s+/).filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
    mustRun('ip', ['netns', 'del', name]);
  });
  // `ip netns exec` bind-mounts this over /etc/resolv.conf: the host's file stays untouched.
  mkdirSync(join('/etc/netns', name), { recursive: true });
  cleanup.push(() => rmSync(join('/etc/netns', name), { recursive: true, force: true }));
  writeFileSync(join('/etc/netns', name, 'resolv.conf'), 'nameserver 127.0.0.1\n');
  mustRun('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  mustRun('ip', ['-n', name, 'addr', 'add', `${ADDRESS}/32`, 'dev', 'lo']);
}

function startProcess(argv: string[], env: Record<string, string>, logFile: string, cleanup: Array<() => Promise<void> | void>): ChildProcess {
  const out = openSync(logFile, 'a');
  const child = spawn(argv[0]!, argv.slice(1), { env: { ...process.env, ...env }, stdio: ['ignore', out, out], detached: true });
  closeSync(out);
  cleanup.push(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    process.kill(-child.pid!, 'SIGTERM');
    if (!(await Promise.race([exited.then(() => true), sleep(5_000).then(() => false)]))) process.kill(-child.pid!, 'SIGKILL');
    await exited;
  });
  return child;
}

function mustRun(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr || r.error?.message}`);
}
