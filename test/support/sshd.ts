import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { generateSshKeyPair, sshFingerprint } from '../../src/clients/sftp';

const SSHD = '/usr/sbin/sshd';
const START_TIMEOUT_MS = 10_000;

export interface RunningSshd {
  host: '127.0.0.1';
  port: number;
  username: string;
  privateKey: string;
  publicKey: string;
  hostKeyFingerprint: string;
  /** The temporary directory holding sshd's config and keys; tests may create files under it. */
  dir: string;
  /** Stops sshd and every session process it forked, then removes `dir`. */
  stop(): Promise<void>;
}

/**
 * A real OpenSSH sshd on 127.0.0.1 for the current user, so the SFTP client is proven against the server Proxmox
 * nodes actually run, not only against our simulator. Skips when sshd is not installed, except in CI.
 */
export async function startSshd(opts: { authorizedKeys?: string[] } = {}): Promise<RunningSshd | { skipped: string }> {
  if (!existsSync(SSHD)) {
    const reason = 'OpenSSH sshd not installed (apt-get install -y openssh-server)';
    if (process.env.CI) throw new Error(`${reason}: CI must install it`);
    return { skipped: reason };
  }
  // sshd refuses to start without its privilege-separation directory; it is missing until the package's service ran.
  if (!existsSync('/run/sshd')) await mkdir('/run/sshd', { recursive: true, mode: 0o755 }).catch(() => undefined);

  const dir = await mkdtemp(join(tmpdir(), 'pveflow-sshd-'));
  const hostKey = generateSshKeyPair('pveflow-test-host');
  const client = generateSshKeyPair('pveflow-test-client');
  const hostKeyPath = join(dir, 'ssh_host_ed25519_key');
  // sshd ignores a private host key that others can read, StrictModes or not.
  await writeFile(hostKeyPath, hostKey.privateKey, { mode: 0o600 });
  await chmod(hostKeyPath, 0o600);
  await writeFile(join(dir, 'authorized_keys'), [client.publicKey, ...(opts.authorizedKeys ?? [])].join('\n') + '\n');
  const config = join(dir, 'sshd_config');
  await writeFile(
    config,
    [
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKeyPath}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'PubkeyAuthentication yes',
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'Subsystem sftp internal-sftp',
      '',
    ].join('\n'),
  );

  let lastError: Error | undefined;
  // A port picked free can be taken before sshd binds it; a second pick settles that.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const child = spawn(SSHD, ['-D', '-e', '-f', config, '-p', String(port)], {
      // Its own process group, so stop() also reaches the per-connection sshd processes it forks.
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const killOnExit = (): void => killGroup(child);
    process.once('exit', killOnExit);
    try {
      await waitUntilListening(child, port, () => stderr);
    } catch (error) {
      process.off('exit', killOnExit);
      await stopProcessGroup(child);
      lastError = error as Error;
      continue;
    }
    return {
      host: '127.0.0.1',
      port,
      username: userInfo().username,
      privateKey: client.privateKey,
      publicKey: client.publicKey,
      hostKeyFingerprint: sshFingerprint(hostKey.publicKey),
      dir,
      stop: async () => {
        process.off('exit', killOnExit);
        await stopProcessGroup(child);
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
  await rm(dir, { recursive: true, force: true });
  throw lastError ?? new Error('sshd did not start');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

async function waitUntilListening(child: ChildProcess, port: number, stderr: () => string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`sshd exited (${child.exitCode ?? child.signalCode}) before listening: ${stderr().trim()}`);
    }
    if (await accepts(port)) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`sshd did not listen on 127.0.0.1:${port} within ${START_TIMEOUT_MS} ms: ${stderr().trim()}`);
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setTimeout(500);
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(false));
  });
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

/** SIGTERM to the group, SIGKILL if sshd is still there after a second, and wait until it has exited. */
async function stopProcessGroup(child: ChildProcess): Promise<void> {
  const exited = child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise<void>((resolve) => child.once('exit', () => resolve()));
  killGroup(child, 'SIGTERM');
  const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 1_000);
  await exited;
  clearTimeout(timer);
  // Session processes of the group may outlive the listener by a moment; they get the same end.
  killGroup(child, 'SIGKILL');
}
