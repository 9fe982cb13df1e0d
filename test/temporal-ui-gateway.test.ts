import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { PayloadCodec } from '@temporalio/common';
import { ApiKeyStore, generateApiKey } from '../src/api/auth/apiKeys';
import { serveTemporalUiGateway, type RunningGateway } from '../src/api/temporalUi/gateway';
import { OperatorSessions, SESSION_COOKIE } from '../src/api/temporalUi/operatorSessions';

/**
 * The gateway's answers to what a browser (or anyone) may send it, without a UI server behind it: a session cookie
 * that is not one the gateway made is a 401, whatever its bytes, never an error page.
 */
describe('Temporal UI gateway: what it answers without a session', () => {
  let gateway: RunningGateway;
  const operator = { id: 'ops', role: 'operator' as const, key: generateApiKey() };
  const identity: PayloadCodec = { encode: async (p) => p, decode: async (p) => p };

  before(async () => {
    gateway = await serveTemporalUiGateway({
      host: '127.0.0.1',
      port: 0,
      // Nothing listens there: a request that got past the session check would be a 502, not a 401.
      upstream: 'http://127.0.0.1:9',
      sessions: new OperatorSessions(new ApiKeyStore([operator]), randomBytes(32)),
      codec: identity,
      namespaces: ['default'],
    });
  });
  after(async () => gateway?.close());

  for (const [what, value] of [
    ['a broken percent-escape', '%E0%A4%A'],
    ['a lone %', '%'],
    ['a forged MAC', 'b3Bz.99999999999999.forged'],
    ['garbage', '!!!'],
  ] as const) {
    test(`a malformed session cookie (${what}) is 401 with no stack trace, for the UI and for the codec`, async () => {
      for (const [path, init] of [
        ['/namespaces/default/workflows', { method: 'GET' }],
        ['/codec/decode', { method: 'POST', headers: { 'content-type': 'application/json', 'x-namespace': 'default' }, body: '{"payloads":[]}' }],
      ] as const) {
        const answer = await fetch(`${gateway.url}${path}`, { ...init, headers: { ...('headers' in init ? init.headers : {}), cookie: `${SESSION_COOKIE}=${value}` } });
        const text = await answer.text();
        assert.equal(answer.status, 401, `${path}: ${text}`);
        assert.doesNotMatch(text, /URIError|\n\s+at /, path);
      }
    });
  }
});
