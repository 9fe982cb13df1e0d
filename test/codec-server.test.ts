import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { defaultPayloadConverter } from '@temporalio/common';
import express from 'express';
import { bearerTokenAuthorizer, createCodecServerRouter } from '../src/api/temporalUi/codecServer';
import { AesGcmPayloadCodec, KeyRing } from '../src/temporal/codec';

/** The codec server as Temporal UI and the CLI use it, over real HTTP on 127.0.0.1. */
const UI_ORIGIN = 'http://127.0.0.1:8233';
const OPERATOR_TOKEN = randomBytes(24).toString('base64url');
const SECRET_VALUE = { rootPassword: 'Zq8!generated-root-password' };

const codec = new AesGcmPayloadCodec(new KeyRing([{ id: 'k1', key: randomBytes(32) }]));
let server: Server;
let base: string;

before(async () => {
  const app = express();
  // Mounted the way the API will mount it: before the API's own (smaller) JSON parser.
  app.use(
    '/codec',
    createCodecServerRouter({
      codec,
      authorize: bearerTokenAuthorizer([OPERATOR_TOKEN]),
      allowedOrigin: UI_ORIGIN,
      namespaces: ['default'],
    }),
  );
  app.use(express.json({ limit: '1kb' }));
  server = await new Promise<Server>((ok) => {
    const s = app.listen(0, '127.0.0.1', () => ok(s));
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/codec`;
});
after(() => new Promise<void>((ok) => server.close(() => ok())));

async function encryptedPayloadJson() {
  const [encoded] = await codec.encode([defaultPayloadConverter.toPayload(SECRET_VALUE)]);
  return {
    metadata: Object.fromEntries(Object.entries(encoded!.metadata!).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
    data: Buffer.from(encoded!.data!).toString('base64'),
  };
}

function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-namespace': 'default', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(5_000),
  });
}

const operator = { authorization: `Bearer ${OPERATOR_TOKEN}` };

describe('codec server', () => {
  test('an operator gets the payloads decoded, as proto JSON with base64 fields', async () => {
    const res = await post('/decode', { payloads: [await encryptedPayloadJson()] }, { ...operator, origin: UI_ORIGIN });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('access-control-allow-origin'), UI_ORIGIN);
    assert.equal(res.headers.get('access-control-allow-credentials'), 'true');
    assert.equal(res.headers.get('cache-control'), 'no-store');
    const body = (await res.json()) as { payloads: Array<{ metadata: Record<string, string>; data: string }> };
    const [p] = body.payloads;
    assert.equal(Buffer.from(p!.metadata.encoding!, 'base64').toString(), 'json/plain');
    assert.deepEqual(JSON.parse(Buffer.from(p!.data, 'base64').toString()), SECRET_VALUE);
  });

  test('encode then decode through the endpoints gives the payload back (the UI encodes signal input)', async () => {
    const plain = { metadata: { encoding: Buffer.from('json/plain').toString('base64') }, data: Buffer.from('"hi"').toString('base64') };
    const enc = (await (await post('/encode', { payloads: [plain] }, operator)).json()) as { payloads: unknown[] };
    assert.equal(Buffer.from((enc.payloads[0] as { metadata: Record<string, string> }).metadata.encoding!, 'base64').toString(), 'binary/encrypted');
    const dec = (await (await post('/decode', enc, operator)).json()) as { payloads: unknown[] };
    assert.deepEqual(dec.payloads, [plain]);
  });

  test('without a valid token: 401 and nothing decoded, readable by the UI thanks to CORS', async () => {
    const attempts: Record<string, string>[] = [{}, { authorization: 'Bearer wrong-token-wrong-token' }, { authorization: OPERATOR_TOKEN }];
    for (const headers of attempts) {
      const res = await post('/decode', { payloads: [await encryptedPayloadJson()] }, { ...headers, origin: UI_ORIGIN });
      assert.equal(res.status, 401);
      assert.equal(res.headers.get('access-control-allow-origin'), UI_ORIGIN);
      assert.ok(!(await res.text()).includes('generated-root-password'));
    }
  });

  test('a preflight from the UI is answered without credentials; one from any other origin is refused', async () => {
    const preflight = (origin: string) =>
      fetch(`${base}/decode`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type,x-namespace' },
        signal: AbortSignal.timeout(5_000),
      });
    const ok = await preflight(UI_ORIGIN);
    assert.equal(ok.status, 204);
    assert.equal(ok.headers.get('access-control-allow-origin'), UI_ORIGIN);
    assert.equal(ok.headers.get('access-control-allow-credentials'), 'true');
    assert.match(ok.headers.get('access-control-allow-headers') ?? '', /Authorization/);
    assert.match(ok.headers.get('access-control-allow-headers') ?? '', /X-Namespace/);
    assert.match(ok.headers.get('access-control-allow-methods') ?? '', /POST/);

    const evil = await preflight('https://evil.example');
    assert.equal(evil.status, 403);
    assert.equal(evil.headers.get('access-control-allow-origin'), null);
  });

  test('a request from a foreign origin is refused even with a valid token', async () => {
    const res = await post('/decode', { payloads: [await encryptedPayloadJson()] }, { ...operator, origin: 'http://127.0.0.1:9999' });
    assert.equal(res.status, 403);
    assert.equal(res.headers.get('access-control-allow-origin'), null);
    assert.ok(!(await res.text()).includes('generated-root-password'));
  });

  test('a namespace this server does not serve is refused', async () => {
    const res = await post('/decode', { payloads: [] }, { ...operator, 'x-namespace': 'other' });
    assert.equal(res.status, 403);
  });

  test('bad bodies get 400, an unknown key 422 naming it, other methods 405', async () => {
    assert.equal((await post('/decode', '{not json', operator)).status, 400);
    assert.equal((await post('/decode', { payloads: [{ data: 'not base64!' }] }, operator)).status, 400);
    assert.equal((await post('/decode', { nope: [] }, operator)).status, 400);

    const foreign = new AesGcmPayloadCodec(new KeyRing([{ id: 'gone', key: randomBytes(32) }]));
    const [p] = await foreign.encode([defaultPayloadConverter.toPayload(1)]);
    const json = {
      metadata: Object.fromEntries(Object.entries(p!.metadata!).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
      data: Buffer.from(p!.data!).toString('base64'),
    };
    const res = await post('/decode', { payloads: [json] }, operator);
    assert.equal(res.status, 422);
    assert.match(((await res.json()) as { detail: string }).detail, /key 'gone'/);

    const get = await fetch(`${base}/decode`, { signal: AbortSignal.timeout(5_000) });
    assert.equal(get.status, 405);
  });

  test('bodies larger than the API limit are accepted (the router parses its own)', async () => {
    const big = { payloads: Array.from({ length: 20 }, () => ({ metadata: {}, data: randomBytes(600).toString('base64') })) };
    assert.equal((await post('/encode', big, operator)).status, 200);
  });

  test('tokens shorter than 16 characters are refused when the server is built', () => {
    assert.throws(() => bearerTokenAuthorizer(['short']), /at least 16/);
  });
});
