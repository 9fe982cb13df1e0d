import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { MockActivityEnvironment } from '@temporalio/testing';
import { utils } from 'ssh2';
import type { ActivityDeps } from '../src/activities/deps';
import { cloudInitSnippetActivities } from '../src/activities/snippets/cloudInitSnippet';

/**
 * `moveSnippet` runs under the cleanup preset's 30 s heartbeat timeout and makes up to four SFTP calls, each bounded
 * by its own timeout: it must heartbeat while they run, or a slow node makes Temporal time the attempt out and start
 * its retry beside it. A node that accepts the connection and never speaks stands for the slow one.
 */
describe('moveSnippet heartbeats', () => {
  let silent: Server;
  const sockets: Socket[] = [];
  let port: number;

  before(async () => {
    silent = createServer((s) => sockets.push(s));
    await new Promise<void>((ok) => silent.listen(0, '127.0.0.1', ok));
    port = (silent.address() as AddressInfo).port;
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((ok) => silent.close(() => ok()));
  });

  test('while its SFTP calls to a slow node run', async () => {
    const { private: privateKey } = utils.generateKeyPairSync('ed25519');
    const deps = {
      sftpTarget: () => ({ host: '127.0.0.1', port, username: 'root', privateKey, hostKeyFingerprint: `SHA256:${'A'.repeat(43)}`, timeoutMs: 6_500 }),
      settings: { snippetsDir: '/var/lib/vz/snippets' },
    } as unknown as ActivityDeps;
    const { moveSnippet } = cloudInitSnippetActivities(deps);
    const env = new MockActivityEnvironment();
    let heartbeats = 0;
    env.on('heartbeat', () => heartbeats++);
    await assert.rejects(env.run(moveSnippet, { serial: 'VM-HB001', name: 'hb', from: 'pve1', to: 'pve2' }), /SFTP to node pve2 for request VM-HB001/);
    assert.ok(heartbeats > 0, 'no heartbeat in 6.5 s of SFTP');
  });
});
