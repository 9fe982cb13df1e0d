import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SftpClient, SftpError, generateSshKeyPair, sshFingerprint, type SftpTarget } from '../src/clients/sftp';
import { createSftpServer } from '../src/simulators/sftp';
import { startSshd, type RunningSshd } from './support/sshd';

/** One SSH endpoint the client is proven against: where it writes remotely and where that lands on this disk. */
interface Endpoint {
  target: SftpTarget;
  remoteDir: string;
  localDir: string;
  stop(): Promise<void>;
}

async function simulatedNode(): Promise<Endpoint> {
  const localDir = await mkdtemp(join(tmpdir(), 'pveflow-sftp-sim-'));
  const hostKey = generateSshKeyPair('sim-host');
  const clientKey = generateSshKeyPair('sim-client');
  const server = await createSftpServer({
    hostKey: hostKey.privateKey,
    username: 'root',
    authorizedKeys: [clientKey.publicKey],
    mounts: { '/var/lib/vz/snippets': localDir },
  }).listen({ host: '127.0.0.1', port: 0 });
  return {
    target: {
      host: '127.0.0.1',
      port: server.port,
      username: 'root',
      privateKey: clientKey.privateKey,
      hostKeyFingerprint: server.hostKeyFingerprint,
      timeoutMs: 5_000,
    },
    remoteDir: '/var/lib/vz/snippets',
    localDir,
    stop: async () => {
      await server.close();
      await rm(localDir, { recursive: true, force: true });
    },
  };
}

async function realSshd(sshd: RunningSshd): Promise<Endpoint> {
  const localDir = join(sshd.dir, 'snippets');
  await mkdir(localDir);
  return {
    target: {
      host: sshd.host,
      port: sshd.port,
      username: sshd.username,
      privateKey: sshd.privateKey,
      hostKeyFingerprint: sshd.hostKeyFingerprint,
      timeoutMs: 5_000,
    },
    // internal-sftp without a chroot sees the real file system, so the remote path is the local one.
    remoteDir: localDir,
    localDir,
    stop: () => sshd.stop(),
  };
}

function isSftpError(kind: SftpError['kind'], retryable: boolean, check?: (error: SftpError) => void) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof SftpError, `expected an SftpError, got ${String(error)}`);
    assert.equal(error.kind, kind, error.message);
    assert.equal(error.retryable, retryable);
    check?.(error);
    return true;
  };
}

function contractFor(name: string, makeEndpoint: () => Promise<Endpoint | { skipped: string }>): void {
  describe(`SftpClient against ${name}`, () => {
    let endpoint: Endpoint | undefined;
    let skipped: string | undefined;
    let client: SftpClient;

    before(async () => {
      const made = await makeEndpoint();
      if ('skipped' in made) skipped = made.skipped;
      else {
        endpoint = made;
        client = new SftpClient(made.target);
      }
    });
    after(async () => {
      await client?.close();
      await endpoint?.stop();
    });

    /** The endpoint, or undefined after marking the test skipped (sshd absent outside CI). */
    const ready = (t: { skip(message: string): void }): Endpoint | undefined => {
      if (skipped !== undefined) t.skip(skipped);
      return endpoint;
    };

    test('upload creates the file with the exact content, readable by its owner only', async (t) => {
      const ep = ready(t);
      if (!ep) return;
      const content = '#cloud-config\nhostname: vm-101\nruncmd:\n  - echo "ünïcödé + $HOME"\n';
      await client.upload(`${ep.remoteDir}/vm-101-user.yaml`, content);
      assert.equal(await readFile(join(ep.localDir, 'vm-101-user.yaml'), 'utf8'), content);
      assert.equal((await stat(join(ep.localDir, 'vm-101-user.yaml'))).mode & 0o777, 0o600);
    });

    test('uploading again replaces the file and leaves no temporary file behind', async (t) => {
      const ep = ready(t);
      if (!ep) return;
      const path = `${ep.remoteDir}/vm-102-user.yaml`;
      await client.upload(path, 'a much longer first version of the snippet\n'.repeat(100));
      await client.upload(path, 'short\n');
      await client.upload(path, 'short\n');
      assert.equal(await readFile(join(ep.localDir, 'vm-102-user.yaml'), 'utf8'), 'short\n');
      assert.deepEqual(
        (await readdir(ep.localDir)).filter((f) => f.includes('vm-102')),
        ['vm-102-user.yaml'],
      );
    });

    test('binary content and an explicit mode arrive unchanged', async (t) => {
      const ep = ready(t);
      if (!ep) return;
      const bytes = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7) % 256));
      await client.upload(`${ep.remoteDir}/blob.bin`, bytes, { mode: 0o640 });
      assert.ok((await readFile(join(ep.localDir, 'blob.bin'))).equals(bytes));
      assert.equal((await stat(join(ep.localDir, 'blob.bin'))).mode & 0o777, 0o640);
    });

    test('read returns what is on the node, and undefined for a missing file', async (t) => {
      const ep = ready(t);
      if (!ep) return;
      await writeFile(join(ep.localDir, 'placed.yaml'), 'placed by the node\n');
      assert.equal((await client.read(`${ep.remoteDir}/placed.yaml`))?.toString('utf8'), 'placed by the node\n');
      assert.equal(await client.read(`${ep.remoteDir}/never-written.yaml`), undefined);
    });

    test('remove reports removed, then absent', async (t) => {
      const ep = ready(t);
      if (!ep) return;
      await client.upload(`${ep.remoteDir}/vm-103-user.yaml`, 'x');
      assert.equal(await client.remove(`${ep.remoteDir}/vm-103-user.yaml`), 'removed');
      assert.equal(await client.remove(`${ep.remoteDir}/vm-103-user.yaml`), 'absent');
      await assert.rejects(stat(join(ep.localDir, 'vm-103-user.yaml')), { code: 'ENOENT' });
    });

    test('upload into a directory that does not exist fails without retry and names the directory', async (t) => {
      const ep = ready(t);
      if (!ep) return;
      await assert.rejects(
        client.upload(`${ep.remoteDir}/missing-dir/x.yaml`, 'x'),
        isSftpError('io', false, (e) => assert.match(e.message, /missing-dir does not exist/)),
      );
    });

    test('a wrong pinned host key is refused before anything is written', async (t) => {
      const ep = ready(t);
      if (!ep) return;
      const wrongPin = sshFingerprint(generateSshKeyPair().publicKey);
      const suspicious = new SftpClient({ ...ep.target, hostKeyFingerprint: wrongPin });
      try {
        await assert.rejects(
          suspicious.upload(`${ep.remoteDir}/mitm.yaml`, 'should never arrive'),
          isSftpError('host-key-mismatch', false, (e) => {
            assert.ok(e.message.includes(`127.0.0.1:${ep.target.port}`), e.message);
            assert.ok(e.message.includes(wrongPin), e.message);
            assert.ok(e.message.includes(ep.target.hostKeyFingerprint), e.message);
            assert.match(e.message, /update the pinned fingerprint/);
          }),
        );
      } finally {
        await suspicious.close();
      }
      await assert.rejects(stat(join(ep.localDir, 'mitm.yaml')), { code: 'ENOENT' });
      assert.deepEqual(
        (await readdir(ep.localDir)).filter((f) => f.includes('mitm')),
        [],
      );
    });

    test('a key the node does not know is refused as an auth failure', async (t) => {
      const ep = ready(t);
      if (!ep) return;
      const stranger = new SftpClient({ ...ep.target, privateKey: generateSshKeyPair().privateKey });
      try {
        await assert.rejects(stranger.read(`${ep.remoteDir}/anything`), isSftpError('auth', false));
      } finally {
        await stranger.close();
      }
    });
  });
}

contractFor('the simulated node (ssh2)', simulatedNode);
contractFor('a real OpenSSH sshd', async () => {
  const sshd = await startSshd();
  return 'skipped' in sshd ? sshd : realSshd(sshd);
});

describe('SftpClient failures that need no server', () => {
  test('a closed port is a retryable connect error naming host and port', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as AddressInfo;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const client = new SftpClient({
      host: '127.0.0.1',
      port,
      username: 'root',
      privateKey: generateSshKeyPair().privateKey,
      hostKeyFingerprint: sshFingerprint(generateSshKeyPair().publicKey),
      timeoutMs: 2_000,
    });
    await assert.rejects(
      client.read('/var/lib/vz/snippets/x'),
      isSftpError('connect', true, (e) => assert.ok(e.message.includes(`127.0.0.1:${port}`))),
    );
    await client.close();
  });

  test('a server that accepts but never speaks SSH times out, retryably', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const client = new SftpClient({
      host: '127.0.0.1',
      port: (silent.address() as AddressInfo).port,
      username: 'root',
      privateKey: generateSshKeyPair().privateKey,
      hostKeyFingerprint: sshFingerprint(generateSshKeyPair().publicKey),
      timeoutMs: 200,
    });
    try {
      await assert.rejects(client.upload('/var/lib/vz/snippets/x', 'x'), isSftpError('timeout', true));
    } finally {
      await client.close();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  test('a malformed pin is rejected when the client is built, with the expected format', () => {
    assert.throws(
      () =>
        new SftpClient({
          host: '127.0.0.1',
          port: 22,
          username: 'root',
          privateKey: generateSshKeyPair().privateKey,
          hostKeyFingerprint: 'MD5:aa:bb:cc',
        }),
      /ssh-keygen -lf/,
    );
  });

  test('sshFingerprint matches what ssh-keygen prints for the same key', async (t) => {
    const { execFileSync } = await import('node:child_process');
    const dir = await mkdtemp(join(tmpdir(), 'pveflow-fp-'));
    try {
      const { publicKey } = generateSshKeyPair('fp-check');
      await writeFile(join(dir, 'key.pub'), `${publicKey}\n`);
      let printed: string;
      try {
        printed = execFileSync('ssh-keygen', ['-lf', join(dir, 'key.pub')], { encoding: 'utf8' });
      } catch {
        if (process.env.CI) throw new Error('ssh-keygen missing in CI (apt-get install -y openssh-client)');
        t.skip('ssh-keygen not installed');
        return;
      }
      assert.equal(printed.split(' ')[1], sshFingerprint(publicKey));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the real sshd harness', () => {
  test('stop() ends sshd and the session processes it forked', async (t) => {
    const sshd = await startSshd();
    if ('skipped' in sshd) {
      t.skip(sshd.skipped);
      return;
    }
    let stopped = false;
    try {
      const pid = Number((await readFile(join(sshd.dir, 'sshd.pid'), 'utf8')).trim());
      assert.ok(pid > 0);
      // A connected client has its own sshd process in the group: stop() must not leave it running.
      const client = new SftpClient({ ...sshd, timeoutMs: 5_000 });
      assert.equal(await client.read(join(sshd.dir, 'none')), undefined);
      await sshd.stop();
      stopped = true;
      await client.close();
      assert.throws(() => process.kill(-pid, 0), { code: 'ESRCH' }, 'a process of the sshd group is still running');
    } finally {
      if (!stopped) await sshd.stop();
    }
  });
});
