import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client, utils, type FileEntry, type SFTPWrapper } from 'ssh2';
import { SftpClient, SftpError, generateSshKeyPair, sshFingerprint } from '../src/clients/sftp';
import { createSftpServer, type RunningSftpServer } from '../src/simulators/sftp';

const STATUS = utils.sftp.STATUS_CODE;
const SNIPPETS = '/var/lib/vz/snippets';

/** The simulated node's SSH endpoint, driven with a raw ssh2 client to see the protocol's own status codes. */
describe('simulated node SFTP server', () => {
  const hostKey = generateSshKeyPair('sim-host');
  const clientKey = generateSshKeyPair('sim-client');
  let localDir: string;
  let server: RunningSftpServer;
  let conn: Client;
  let sftp: SFTPWrapper;

  const call = <T = void>(start: (cb: (error?: Error | null, value?: T) => void) => void): Promise<T> => new Promise<T>((resolve, reject) => start((error, value) => (error ? reject(error) : resolve(value as T))));
  const status = (code: number) => (error: unknown) => {
    assert.equal((error as { code?: unknown }).code, code, String(error));
    return true;
  };

  before(async () => {
    localDir = await mkdtemp(join(tmpdir(), 'pveflow-sftp-server-'));
    server = await createSftpServer({
      hostKey: hostKey.privateKey,
      username: 'root',
      authorizedKeys: [clientKey.publicKey],
      mounts: { [SNIPPETS]: localDir },
    }).listen({ port: 0 });
    conn = new Client();
    await new Promise<void>((resolve, reject) => {
      conn.once('ready', resolve).once('error', reject);
      conn.connect({
        host: '127.0.0.1',
        port: server.port,
        username: 'root',
        privateKey: clientKey.privateKey,
        readyTimeout: 5_000,
        hostVerifier: (key: Buffer) => sshFingerprint(key) === server.hostKeyFingerprint,
      });
    });
    sftp = await call<SFTPWrapper>((cb) => conn.sftp(cb));
  });
  after(async () => {
    conn?.end();
    await server?.close();
    await rm(localDir, { recursive: true, force: true });
  });

  test('a path outside the mounts is refused with PERMISSION_DENIED, even through ..', async () => {
    const denied = status(STATUS.PERMISSION_DENIED);
    await assert.rejects(
      call((cb) => sftp.writeFile('/etc/pveflow-escape', 'x', cb)),
      denied,
    );
    const escape = `${SNIPPETS}/../escape.txt`;
    await assert.rejects(
      call((cb) => sftp.writeFile(escape, 'x', cb)),
      denied,
    );
    await assert.rejects(
      call((cb) => sftp.stat('/var/lib/vz', cb)),
      denied,
    );
    await assert.rejects(
      call((cb) => sftp.readdir('/', cb)),
      denied,
    );
    assert.ok(!(await readdir(dirname(localDir))).includes('escape.txt'), 'nothing may land beside the mount');
  });

  test('the SFTP client reports a refused path as a non-retryable permission error', async () => {
    const client = new SftpClient({
      host: '127.0.0.1',
      port: server.port,
      username: 'root',
      privateKey: clientKey.privateKey,
      hostKeyFingerprint: server.hostKeyFingerprint,
      timeoutMs: 5_000,
    });
    try {
      await assert.rejects(client.upload('/etc/cron.d/evil', 'x'), (error: unknown) => {
        assert.ok(error instanceof SftpError);
        assert.equal(error.kind, 'permission');
        assert.equal(error.retryable, false);
        assert.equal(error.path, '/etc/cron.d/evil');
        return true;
      });
    } finally {
      await client.close();
    }
  });

  test('a missing file is NO_SUCH_FILE for stat, open and remove', async () => {
    await assert.rejects(
      call((cb) => sftp.stat(`${SNIPPETS}/nope`, cb)),
      status(STATUS.NO_SUCH_FILE),
    );
    await assert.rejects(
      call((cb) => sftp.readFile(`${SNIPPETS}/nope`, cb)),
      status(STATUS.NO_SUCH_FILE),
    );
    await assert.rejects(
      call((cb) => sftp.unlink(`${SNIPPETS}/nope`, cb)),
      status(STATUS.NO_SUCH_FILE),
    );
  });

  test('rename onto an existing file fails like OpenSSH and keeps both files', async () => {
    await writeFile(join(localDir, 'old.yaml'), 'old');
    await writeFile(join(localDir, 'new.yaml'), 'new');
    await assert.rejects(
      call((cb) => sftp.rename(`${SNIPPETS}/new.yaml`, `${SNIPPETS}/old.yaml`, cb)),
      status(STATUS.FAILURE),
    );
    assert.equal(await readFile(join(localDir, 'old.yaml'), 'utf8'), 'old');
    assert.equal(await readFile(join(localDir, 'new.yaml'), 'utf8'), 'new');
    await call((cb) => sftp.rename(`${SNIPPETS}/new.yaml`, `${SNIPPETS}/renamed.yaml`, cb));
    assert.equal(await readFile(join(localDir, 'renamed.yaml'), 'utf8'), 'new');
  });

  test('mkdir, readdir, stat and rmdir work inside the mount; the mount point cannot be removed', async () => {
    await call((cb) => sftp.mkdir(`${SNIPPETS}/sub`, cb));
    await call((cb) => sftp.writeFile(`${SNIPPETS}/sub/a.yaml`, 'abc', cb));
    const listing = await call<FileEntry[]>((cb) => sftp.readdir(`${SNIPPETS}/sub`, cb));
    assert.deepEqual(
      listing.map((e) => e.filename),
      ['a.yaml'],
    );
    assert.match(listing[0]?.longname ?? '', /^-rw.* 3 .* a\.yaml$/);
    const stats = await call<{ size: number; isFile(): boolean }>((cb) => sftp.stat(`${SNIPPETS}/sub/a.yaml`, cb));
    assert.equal(stats.size, 3);
    assert.ok(stats.isFile());
    await assert.rejects(
      call((cb) => sftp.rmdir(`${SNIPPETS}/sub`, cb)),
      status(STATUS.FAILURE),
    ); // not empty
    await call((cb) => sftp.unlink(`${SNIPPETS}/sub/a.yaml`, cb));
    await call((cb) => sftp.rmdir(`${SNIPPETS}/sub`, cb));
    await assert.rejects(
      call((cb) => sftp.rmdir(SNIPPETS, cb)),
      status(STATUS.PERMISSION_DENIED),
    );
  });

  test('realpath normalises without touching the disk', async () => {
    assert.equal(await call<string>((cb) => sftp.realpath('.', cb)), '/');
    assert.equal(await call<string>((cb) => sftp.realpath(`${SNIPPETS}/a/../b.yaml`, cb)), `${SNIPPETS}/b.yaml`);
  });

  test('there is no shell: exec is refused', async () => {
    await assert.rejects(call((cb) => conn.exec('id', cb)));
  });

  test('an unknown key, or the right key for another user, cannot log in', async () => {
    const attempts = [
      { username: 'root', privateKey: generateSshKeyPair().privateKey },
      { username: 'admin', privateKey: clientKey.privateKey },
    ];
    for (const attempt of attempts) {
      const client = new SftpClient({
        host: '127.0.0.1',
        port: server.port,
        hostKeyFingerprint: server.hostKeyFingerprint,
        timeoutMs: 5_000,
        ...attempt,
      });
      try {
        await assert.rejects(client.read(`${SNIPPETS}/x`), (error: unknown) => {
          assert.ok(error instanceof SftpError && error.kind === 'auth', String(error));
          return true;
        });
      } finally {
        await client.close();
      }
    }
  });

  test('close() drops connected clients instead of waiting for them', async () => {
    const other = await createSftpServer({
      hostKey: hostKey.privateKey,
      username: 'root',
      authorizedKeys: [clientKey.publicKey],
      mounts: { [SNIPPETS]: localDir },
    }).listen({});
    const lingering = new Client();
    const closed = new Promise<void>((resolve) => lingering.once('close', () => resolve()));
    lingering.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      lingering.once('ready', resolve).once('error', reject);
      lingering.connect({
        host: '127.0.0.1',
        port: other.port,
        username: 'root',
        privateKey: clientKey.privateKey,
        hostVerifier: (key: Buffer) => sshFingerprint(key) === other.hostKeyFingerprint,
      });
    });
    await other.close();
    await closed;
  });
});
