import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { ApiKeyStore, generateApiKey } from '../src/api/auth/apiKeys';
import { ApiStopping, InFlightCalls } from '../src/api/http/inFlightCalls';
import { serveApi } from '../src/api/http/serve';
import { defaultRequestPolicy } from '../src/domain/requestPolicyRules';
import { freePort } from './support/ports';
import { waitFor } from './support/waitFor';

/**
 * The API's stop comes before its Temporal connection's close, and must leave nothing to run on the closed channel:
 * a call the SDK is retrying waits on a timer, and a send from that timer after the close throws where no handler
 * can catch it ("Channel has been shut down", an uncaughtException that ends the process). Here Temporal is an
 * address nobody listens on, so every call is retried until the API's deadline: the worst case, made certain.
 */
describe("the API's stop", () => {
  test('waits for the Temporal calls in flight, refuses new ones unsent, and leaves the connection nothing to run', async () => {
    const operator = { id: 'ops', role: 'operator' as const, key: generateApiKey() };
    const connection = Connection.lazy({ address: `127.0.0.1:${await freePort()}` });
    const client = new Client({ connection });
    const inFlight = new InFlightCalls();
    const deps = { client, taskQueue: 'api-stop', policy: defaultRequestPolicy, apiKeys: new ApiKeyStore([operator]), timings: { temporalTimeoutMs: 2_000 }, inFlight };
    const api = await serveApi(deps, '127.0.0.1', 0);
    try {
      // A readiness check: its call to Temporal is retried (nothing answers) until the deadline.
      const asked = fetch(`http://127.0.0.1:${api.port}/readyz`).catch((err: unknown) => err);
      await waitFor('the readiness check to be asking Temporal', async () => (inFlight.size > 0 ? true : undefined), 10_000, 20);

      await api.stop();
      assert.equal(inFlight.size, 0, 'the stop resolved before the call in flight had settled');
      assert.ok((await asked) instanceof Error, 'the open connection was ended by the stop');
      await assert.rejects(
        inFlight.run(() => client.workflowService.getSystemInfo({})),
        ApiStopping,
      );
    } finally {
      await api.stop();
      await connection.close();
    }

    // What a caller meets on an API that is stopping: 503 saying so, not "Temporal unavailable".
    const late = await serveApi(deps, '127.0.0.1', 0);
    try {
      const res = await fetch(`http://127.0.0.1:${late.port}/api/device_requests/VM-ABCDE`, { headers: { authorization: `Bearer ${operator.key}` } });
      assert.equal(res.status, 503);
      assert.match(((await res.json()) as { detail: string }).detail, /this API is stopping/);
    } finally {
      await late.stop();
    }
  });
});
