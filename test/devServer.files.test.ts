import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { describe, test } from 'node:test';
import { startDevServer } from '../src/embedded/devServer';
import { resolveTemporalBinary } from '../src/temporal/binaries';
import { freePort } from './support/ports';

/**
 * The embedded default's Temporal state is every request in clear of its codec's reach (search attributes, the
 * history's metadata) and its log names them: files of the operator alone, whatever the umask.
 */
describe("the embedded dev server's files and ports", { skip: resolveTemporalBinary('temporal').type !== 'existing-path' && !process.env.CI && 'no project Temporal binary' }, () => {
  test('the SQLite database, its WAL and shared memory, and the log are 0600', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pveflow-devfiles-'));
    const umask = process.umask(0o022); // the usual default: files would be world-readable
    try {
      const server = await startDevServer({
        ip: '127.0.0.1',
        port: await freePort(),
        uiPort: await freePort(),
        dbFile: join(dir, 'temporal.db'),
        namespace: 'default',
        searchAttributes: [],
        logFile: join(dir, 'temporal.log'),
      });
      try {
        assert.ok(existsSync(join(dir, 'temporal.db')));
        for (const file of readdirSync(dir)) {
          const mode = statSync(join(dir, file)).mode & 0o777;
          assert.equal(mode & 0o077, 0, `${file} is ${mode.toString(8)}`);
        }
      } finally {
        await server.stop();
      }
    } finally {
      process.umask(umask);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a port someone else holds stops the start naming the port and its setting, not only an exit code', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pveflow-devports-'));
    // It takes the port and never answers whoever connects: the start's probe must not hang on it.
    const accepted = new Set<Socket>();
    const holder = createServer((socket) => accepted.add(socket));
    await new Promise<void>((ok) => holder.listen(0, '127.0.0.1', ok));
    const taken = (holder.address() as AddressInfo).port;
    try {
      for (const [ports, setting] of [
        [{ port: taken, uiPort: await freePort() }, 'TEMPORAL_PORT'],
        [{ port: await freePort(), uiPort: taken }, 'TEMPORAL_UI_PORT'],
      ] as const) {
        await assert.rejects(startDevServer({ ip: '127.0.0.1', ...ports, dbFile: join(dir, 'temporal.db'), namespace: 'default', searchAttributes: [], logFile: join(dir, 'temporal.log') }), (err: Error) => {
          assert.match(err.message, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${taken}: the port is in use; set ${setting} to a free port`));
          return true;
        });
      }
    } finally {
      holder.close();
      for (const socket of accepted) socket.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
