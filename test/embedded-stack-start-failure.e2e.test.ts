import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { generateApiKey } from '../src/api/auth/apiKeys';
import { startEmbeddedStack } from '../src/embedded/stack';
import { ListenError, listenOn } from '../src/net/listenOn';
import { requireTemporalBinary } from '../src/temporal/binaries';
import { freePort } from './support/ports';

/**
 * The embedded default whose Temporal UI gateway finds its port taken, late in the start (the dev server, the world,
 * the worker and the client are up by then): the start is refused with the port and the setting named, and what it
 * had started is stopped, so nothing it started still listens. Before, Express 5's listen callback took the 'error'
 * for success and the start died on a TypeError ("server.address() is null").
 */
const dataDir = mkdtempSync(join(tmpdir(), 'pveflow-start-failure-'));
after(() => rmSync(dataDir, { recursive: true, force: true }));

/** Whether anything accepts a TCP connection on 127.0.0.1:port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

test('a taken TEMPORAL_UI_PORT refuses the start by name, and the start leaves nothing listening', { timeout: 300_000 }, async () => {
  requireTemporalBinary('temporal');
  const holder = createServer();
  const uiPort = await listenOn(holder, '127.0.0.1', 0, { what: 'the test holding the gateway port' });
  const ports = { temporal: await freePort(), pve: await freePort(), netbird: await freePort() };
  try {
    await assert.rejects(
      startEmbeddedStack({
        env: {
          PATH: process.env.PATH,
          DATA_DIR: dataDir,
          TEMPORAL_PORT: String(ports.temporal),
          TEMPORAL_UI_PORT: String(uiPort),
          TEMPORAL_TASK_QUEUE: `start-failure-${process.pid}`,
          API_PORT: '0',
          SIM_PVE_PORT: String(ports.pve),
          SIM_NETBIRD_PORT: String(ports.netbird),
          SIM_TIMING: 'fast',
          SYNC_INTERVAL_S: '3600',
          API_KEYS: JSON.stringify({ keys: [{ id: 'ops', role: 'operator', key: generateApiKey() }] }),
        },
      }),
      (err: unknown) => {
        assert.ok(err instanceof ListenError, `a ListenError, not ${String(err)}`);
        assert.equal(err.message, `the Temporal UI gateway cannot listen on 127.0.0.1:${uiPort}: the port is in use; set TEMPORAL_UI_PORT to a free port, or stop what listens there`);
        return true;
      },
    );
    // The start's own stop ran before the rejection: the dev server, the simulated Proxmox VE and NetBird are gone.
    for (const [what, port] of Object.entries(ports)) assert.equal(await accepts(port), false, `${what} still listens on ${port}`);
  } finally {
    await new Promise<void>((closed) => holder.close(() => closed()));
  }
});
