import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import type { PayloadCodec } from '@temporalio/common';
import { ApiKeyStore } from '../src/api/auth/apiKeys';
import { serveApi } from '../src/api/http/serve';
import { serveTemporalUiGateway } from '../src/api/temporalUi/gateway';
import { OperatorSessions } from '../src/api/temporalUi/operatorSessions';
import { defaultRequestPolicy } from '../src/domain/requestPolicyRules';
import { ListenError, listenOn } from '../src/net/listenOn';
import { createMetricsRegistry } from '../src/observability';
import { startMetricsServer } from '../src/observability/metricsServer';

/**
 * A port taken before one of our servers binds it (a port picked free, then taken by someone else first) is refused
 * with the port and the setting that moves it named: Express 5's `app.listen` called its callback on the 'error' as
 * on 'listening', and the server's `address()` was null ("Cannot destructure property 'port'..."), a TypeError
 * telling the operator nothing.
 */
describe('a server of ours on a port already taken', () => {
  let holder: Server;
  let taken: number;
  before(async () => {
    holder = createServer();
    taken = await listenOn(holder, '127.0.0.1', 0, { what: 'the test holding a port' });
  });
  after(() => new Promise<void>((closed) => holder.close(() => closed())));

  const refusal = (setting: string, what: RegExp) => (err: unknown) => {
    assert.ok(err instanceof ListenError, `a ListenError, not ${String(err)}`);
    assert.equal(err.code, 'EADDRINUSE');
    assert.equal(err.port, taken);
    assert.match(err.message, what);
    assert.ok(err.message.includes(`127.0.0.1:${taken}`), err.message);
    assert.ok(err.message.includes(`set ${setting} to a free port`), err.message);
    return true;
  };

  test('the Temporal UI gateway names TEMPORAL_UI_PORT', async () => {
    const identity: PayloadCodec = { encode: async (p) => p, decode: async (p) => p };
    await assert.rejects(
      serveTemporalUiGateway({
        host: '127.0.0.1',
        port: taken,
        upstream: 'http://127.0.0.1:9',
        sessions: new OperatorSessions(new ApiKeyStore([]), randomBytes(32)),
        codec: identity,
        namespaces: ['default'],
      }),
      refusal('TEMPORAL_UI_PORT', /^the Temporal UI gateway cannot listen on .*: the port is in use/),
    );
  });

  test('the API names API_PORT', async () => {
    const connection = Connection.lazy({ address: '127.0.0.1:9' });
    try {
      const deps = { client: new Client({ connection }), taskQueue: 'listen-on', policy: defaultRequestPolicy, apiKeys: new ApiKeyStore([]) };
      await assert.rejects(serveApi(deps, '127.0.0.1', taken), refusal('API_PORT', /^the API cannot listen on /));
    } finally {
      await connection.close();
    }
  });

  test("the worker's metrics server names WORKER_METRICS_PORT", async () => {
    await assert.rejects(startMetricsServer({ host: '127.0.0.1', port: taken, registry: createMetricsRegistry() }), refusal('WORKER_METRICS_PORT', /^the worker's metrics server cannot listen on /));
  });

  test('the same servers on port 0 tell the port the system gave them', async () => {
    const metrics = await startMetricsServer({ host: '127.0.0.1', port: 0, registry: createMetricsRegistry() });
    try {
      const port = Number(new URL(metrics.url).port);
      assert.ok(port > 0 && port !== taken, metrics.url);
      assert.equal((await fetch(metrics.url)).status, 200, 'it listens there');
    } finally {
      await metrics.close();
    }
  });
});

describe('listenOn', () => {
  test('an address that is not one of this machine is named as such', async () => {
    // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never an address of this machine.
    const server = createServer();
    await assert.rejects(listenOn(server, '192.0.2.1', 0, { what: 'the probe' }), (err: unknown) => {
      assert.ok(err instanceof ListenError);
      assert.equal(err.code, 'EADDRNOTAVAIL');
      assert.equal(err.message, 'the probe cannot listen on 192.0.2.1:0: 192.0.2.1 is not an address of this machine');
      return true;
    });
    assert.equal(server.listening, false);
  });
});
