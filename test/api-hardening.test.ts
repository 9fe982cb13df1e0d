import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { createApp } from '../src/api/app';
import type { ApiTimings } from '../src/api/http/apiConfig';
import { ApiKeyStore, generateApiKey } from '../src/api/auth/apiKeys';
import { WriteLimiter } from '../src/api/http/rateLimits';
import { signWebhook, WEBHOOK_TOLERANCE_S } from '../src/api/intake/webhookSignature';
import { ConfigError, loadConfig } from '../src/config';
import { defaultRequestPolicy } from '../src/domain/requestPolicyRules';
import { startDevServer } from '../src/embedded/devServer';
import { requireTemporalBinary, resolveTemporalBinary } from '../src/temporal/binaries';
import { searchAttributeDefinitions } from '../src/contracts/searchAttributes';
import { ResponseChecker, type Answer, type OpenApiDocument } from './support/openapiResponses';
import { freePort } from './support/ports';
import { validRequestBody } from './support/requests';
import { quietLogger } from './support/quietLogger';
import { waitFor } from './support/waitFor';

/**
 * The API's contract under hostile or careless callers, on a real dev server with a stand-in request workflow (it
 * stays Pending): signed webhooks that cannot be replayed, the request policy at every intake, content types, the
 * requester bound to its key, bounds on streams and writes, 405 for unserved methods, production settings, the dev
 * server's environment. Every answer is checked against the served OpenAPI document by an independent validator.
 */
const DAY = 24 * 3600_000;
const ORG = 'Acme Corp';
const SECRET = `whsec-${generateApiKey()}`;
const keys = {
  rita: { id: 'rita', role: 'requester' as const, org: ORG, email: 'rita@acme.example', key: generateApiKey() },
  ada: { id: 'ada', role: 'admin' as const, org: ORG, email: 'ada@acme.example', key: generateApiKey() },
  ops: { id: 'ops', role: 'operator' as const, key: generateApiKey() },
};
type Who = keyof typeof keys;

describe('API hardening', () => {
  let env: TestWorkflowEnvironment;
  let worker: Worker;
  let running: Promise<void>;
  const servers: Server[] = [];
  let checker: ResponseChecker;
  let starts = 0;
  const taskQueue = `hardening-${process.pid}`;

  const serve = async (timings: Partial<ApiTimings> = {}, policy = defaultRequestPolicy): Promise<string> => {
    const app = createApp({ client: env.client, taskQueue, policy, apiKeys: new ApiKeyStore(Object.values(keys)), webhookSecret: SECRET, timings: { writesPerMinute: 0, ...timings } });
    const server = await new Promise<Server>((ok) => {
      const s = app.listen(0, '127.0.0.1', () => ok(s));
    });
    servers.push(server);
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  };
  let base: string;

  before(async () => {
    env = await TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path: requireTemporalBinary('temporal') }, searchAttributes: searchAttributeDefinitions },
    });
    const workflow = env.client.workflow;
    const start = workflow.start.bind(workflow);
    workflow.start = ((...args: Parameters<typeof start>) => {
      starts += 1;
      return start(...args);
    }) as typeof workflow.start;
    const bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('./support/pendingRequestWorkflow'), logger: quietLogger });
    worker = await Worker.create({ connection: env.nativeConnection, namespace: 'default', taskQueue, workflowBundle: bundle });
    running = worker.run();
    base = await serve();
    checker = new ResponseChecker((await (await fetch(`${base}/api/openapi.json`)).json()) as OpenApiDocument);
  });

  after(async () => {
    for (const s of servers)
      await new Promise<void>((ok) => {
        s.close(() => ok());
        s.closeAllConnections();
      });
    worker?.shutdown();
    await running;
    await env?.teardown();
  });

  /** One call, its answer checked against the document. */
  const call = async (at: string, method: string, path: string, opts: { who?: Who; body?: string | Uint8Array | object; headers?: Record<string, string> } = {}): Promise<Answer> => {
    // A Uint8Array goes as it is, with no content type (fetch gives a string one of text/plain).
    const body = opts.body === undefined ? undefined : typeof opts.body === 'string' || opts.body instanceof Uint8Array ? opts.body : JSON.stringify(opts.body);
    const res = await fetch(`${at}${path}`, {
      method,
      headers: {
        ...(opts.who ? { authorization: `Bearer ${keys[opts.who].key}` } : {}),
        ...(typeof opts.body === 'object' && !(opts.body instanceof Uint8Array) ? { 'content-type': 'application/json' } : {}),
        ...opts.headers,
      },
      body,
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    const answer = { status: res.status, headers: res.headers, body: text && res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text };
    checker.check(method, path, answer);
    return answer;
  };
  const deliver = (body: string, delivery: string, at = Date.now(), headers: Record<string, string> = {}) =>
    call(base, 'POST', '/api/hooks/device_requests', { body, headers: { 'content-type': 'application/json', 'x-pveflow-delivery': delivery, 'x-pveflow-signature': signWebhook(SECRET, delivery, body, at), ...headers } });
  const counting = async (fn: () => Promise<void>): Promise<number> => {
    const before = starts;
    await fn();
    return starts - before;
  };
  const future = (startDays: number, endDays: number) => ({ period: { start: new Date(Date.now() + startDays * DAY).toISOString(), end: new Date(Date.now() + endDays * DAY).toISOString() } });
  const issuesOf = (a: Answer) => (a.body as { issues: Array<{ field: string; reason: string; rule?: string }> }).issues;

  test('a webhook signature covers time, delivery id and body: a capture replayed under a new id or after 5 minutes is refused', async () => {
    const body = JSON.stringify(validRequestBody({ name: 'hooked', ...future(1, 8) }));
    const first = `portal-${process.pid}-1`;
    const signature = signWebhook(SECRET, first, body);
    const accepted = await call(base, 'POST', '/api/hooks/device_requests', { body, headers: { 'content-type': 'application/json', 'x-pveflow-delivery': first, 'x-pveflow-signature': signature } });
    assert.equal(accepted.status, 201, JSON.stringify(accepted.body));

    const replays = await counting(async () => {
      for (const id of [`portal-${process.pid}-2`, `portal-${process.pid}-3`]) {
        const replay = await call(base, 'POST', '/api/hooks/device_requests', { body, headers: { 'content-type': 'application/json', 'x-pveflow-delivery': id, 'x-pveflow-signature': signature } });
        assert.equal(replay.status, 401, 'the captured signature does not hold for another delivery id');
        assert.match((replay.body as { detail: string }).detail, /signature does not match/);
      }
      for (const offset of [-(WEBHOOK_TOLERANCE_S + 60), WEBHOOK_TOLERANCE_S + 60]) {
        const stale = await deliver(body, `portal-${process.pid}-stale${offset}`, Date.now() + offset * 1000);
        assert.equal(stale.status, 401, `signed ${offset} s from now`);
        assert.match((stale.body as { detail: string }).detail, /timestamp t=\d+ is \d+ s away from this server's clock \(at most 300 s\)/);
      }
    });
    assert.equal(replays, 0, 'no replay reached Temporal');
    const redelivered = await call(base, 'POST', '/api/hooks/device_requests', { body, headers: { 'content-type': 'application/json', 'x-pveflow-delivery': first, 'x-pveflow-signature': signature } });
    assert.equal(redelivered.status, 200, 'the same delivery within the window is a redelivery');
    assert.deepEqual(redelivered.body, { serial: (accepted.body as { serial: string }).serial, duplicate: true });

    const slightlyLate = await deliver(body, `portal-${process.pid}-late`, Date.now() - (WEBHOOK_TOLERANCE_S - 60) * 1000);
    assert.equal(slightlyLate.status, 201, 'a delivery signed within the window is taken');
  });

  test('the request policy is enforced at submission, class and webhook intake: 400 naming the field and the rule', async () => {
    const cases: Array<[string, Record<string, unknown>, string, string | undefined]> = [
      ['a lease to 2099', { period: { start: new Date(Date.now() + DAY).toISOString(), end: '2099-12-31T18:00:00Z' } }, 'period.end', 'max-lease'],
      // Out of the years the schema takes (2000-2100): refused by the pattern the document states, before any policy.
      ['a year in 9999', { period: { start: '9999-01-01T09:00:00Z', end: '9999-12-31T18:00:00Z' } }, 'period.end', undefined],
      ['a period that has ended', { period: { start: new Date(Date.now() - 10 * 3600_000).toISOString(), end: new Date(Date.now() - 3600_000).toISOString() } }, 'period.end', 'end-in-past'],
      ['a start three days ago', { period: { start: new Date(Date.now() - 3 * DAY).toISOString(), end: new Date(Date.now() + DAY).toISOString() } }, 'period.start', 'start-in-past'],
    ];
    const started = await counting(async () => {
      for (const [what, overrides, field, rule] of cases) {
        const answers = [
          await call(base, 'POST', '/api/device_requests', { who: 'ops', body: validRequestBody(overrides) }),
          await call(base, 'POST', '/api/classes', { who: 'ops', body: { ...validRequestBody(overrides), name: 'lab', count: 2 } }),
          await deliver(JSON.stringify(validRequestBody(overrides)), `policy-${process.pid}-${rule ?? 'schema'}-${Date.now()}`),
        ];
        for (const [i, a] of answers.entries()) {
          const label = `${['submission', 'class', 'webhook'][i]}: ${what}: ${JSON.stringify(a.body)}`;
          assert.equal(a.status, 400, label);
          const issue = issuesOf(a).find((x) => x.field === field);
          assert.ok(issue, label);
          assert.equal(issue.rule, rule, label);
        }
      }
    });
    assert.equal(started, 0, 'nothing the policy refuses was started');
    // The longest lease the policy allows is taken.
    const longest = await call(base, 'POST', '/api/device_requests', {
      who: 'ops',
      body: validRequestBody({ period: { start: new Date(Date.now() + DAY).toISOString(), end: new Date(Date.now() + (1 + defaultRequestPolicy.maxLeaseDays) * DAY).toISOString() } }),
    });
    assert.equal(longest.status, 201, JSON.stringify(longest.body));
  });

  test('a retry of a request taken while the policy held finds it, though the policy would refuse it now', async () => {
    // Time is not moved: a second API with a shorter maximum lease stands for "later, when the period no longer fits".
    const later = await serve({}, { ...defaultRequestPolicy, maxLeaseDays: 5 });
    const body = validRequestBody({ name: 'retried', ...future(1, 11) });
    const key = `retry-${process.pid}-${Date.now()}`;
    const first = await call(base, 'POST', '/api/device_requests', { who: 'ops', body, headers: { 'idempotency-key': key } });
    assert.equal(first.status, 201, JSON.stringify(first.body));
    const classFirst = await call(base, 'POST', '/api/classes', { who: 'ops', body: { ...body, name: 'lab', count: 2 }, headers: { 'idempotency-key': key } });
    assert.equal(classFirst.status, 201, JSON.stringify(classFirst.body));
    const delivery = `retry-${process.pid}-${Date.now()}`;
    const text = JSON.stringify(body);
    assert.equal((await deliver(text, delivery)).status, 201);

    const started = await counting(async () => {
      const retried = await call(later, 'POST', '/api/device_requests', { who: 'ops', body, headers: { 'idempotency-key': key } });
      assert.equal(retried.status, 200, JSON.stringify(retried.body));
      assert.equal((retried.body as { serial: string }).serial, (first.body as { serial: string }).serial);
      const classRetried = await call(later, 'POST', '/api/classes', { who: 'ops', body: { ...body, name: 'lab', count: 2 }, headers: { 'idempotency-key': key } });
      assert.equal(classRetried.status, 200, JSON.stringify(classRetried.body));
      const redelivered = await call(later, 'POST', '/api/hooks/device_requests', {
        body: text,
        headers: { 'content-type': 'application/json', 'x-pveflow-delivery': delivery, 'x-pveflow-signature': signWebhook(SECRET, delivery, text) },
      });
      assert.equal(redelivered.status, 200, JSON.stringify(redelivered.body));
    });
    assert.equal(started, 0, 'a retry starts nothing');

    // A new key, a new delivery: the policy of now applies.
    const fresh = await call(later, 'POST', '/api/device_requests', { who: 'ops', body, headers: { 'idempotency-key': `${key}-new` } });
    assert.equal(fresh.status, 400);
    assert.equal(issuesOf(fresh)[0]!.rule, 'max-lease');
    const freshClass = await call(later, 'POST', '/api/classes', { who: 'ops', body: { ...body, name: 'lab', count: 2 }, headers: { 'idempotency-key': `${key}-new` } });
    assert.equal(freshClass.status, 400);
    const freshDelivery = await call(later, 'POST', '/api/hooks/device_requests', {
      body: text,
      headers: { 'content-type': 'application/json', 'x-pveflow-delivery': `${delivery}-new`, 'x-pveflow-signature': signWebhook(SECRET, `${delivery}-new`, text) },
    });
    assert.equal(freshDelivery.status, 400);
    assert.equal(issuesOf(freshDelivery)[0]!.rule, 'max-lease');
  });

  test('a body sent as text/plain or form-encoded is a 400 that names the content type, on every intake', async () => {
    const body = JSON.stringify(validRequestBody(future(1, 3)));
    const started = await counting(async () => {
      for (const type of ['text/plain', 'application/x-www-form-urlencoded']) {
        const payload = type === 'text/plain' ? body : 'name=kali&client=Acme+Corp';
        const answers = [
          await call(base, 'POST', '/api/device_requests', { who: 'ops', body: payload, headers: { 'content-type': type } }),
          await call(base, 'POST', '/api/classes', { who: 'ops', body: payload, headers: { 'content-type': type } }),
          await call(base, 'POST', '/api/device_requests/VM-ZZZZ9/approve', { who: 'ops', body: '{}', headers: { 'content-type': type } }),
          await deliver(payload, `ctype-${process.pid}-${type.length}`, Date.now(), { 'content-type': type }),
        ];
        for (const a of answers) {
          assert.equal(a.status, 400, JSON.stringify(a.body));
          assert.deepEqual(
            issuesOf(a).map((i) => i.field),
            ['content-type'],
          );
          assert.match((a.body as { detail: string }).detail, new RegExp(`Content-Type: application/json, not ${type.replace('+', '\\+')}`));
        }
      }
      const none = await call(base, 'POST', '/api/device_requests', { who: 'ops', body: Buffer.from(body) });
      assert.equal(none.status, 400, 'no content type at all');
      assert.match((none.body as { detail: string }).detail, /header is missing/);
    });
    assert.equal(started, 0);
  });

  test("a requester submits only as the key's own email; admins and operators submit for others", async () => {
    const other = await counting(async () => {
      for (const path of ['/api/device_requests', '/api/classes']) {
        const extra = path === '/api/classes' ? { name: 'lab', count: 2 } : {};
        const forged = await call(base, 'POST', path, { who: 'rita', body: { ...validRequestBody({ requester: 'mallory@acme.example', ...future(1, 3) }), ...extra } });
        assert.equal(forged.status, 403, JSON.stringify(forged.body));
        assert.match((forged.body as { detail: string }).detail, /requester must be rita@acme\.example, not mallory@acme\.example/);
      }
    });
    assert.equal(other, 0, 'nothing was submitted under another name');
    const own = await call(base, 'POST', '/api/device_requests', { who: 'rita', body: validRequestBody({ requester: 'Rita@Acme.Example', ...future(1, 3) }) });
    assert.equal(own.status, 201, 'the own email, in any case');
    const onBehalf = await call(base, 'POST', '/api/device_requests', { who: 'ada', body: validRequestBody({ requester: 'mallory@acme.example', ...future(1, 3) }) });
    assert.equal(onBehalf.status, 201, 'an admin submits for someone of the org');
  });

  test('log streams are bounded per key and overall (429 with Retry-After), and a closed stream frees its place', async () => {
    const at = await serve({ maxStreamsPerKey: 2, maxStreams: 3, logPollMs: 200, sseHeartbeatMs: 1000 });
    const created = await call(at, 'POST', '/api/device_requests', { who: 'ops', body: validRequestBody(future(2, 4)) });
    const serial = (created.body as { serial: string }).serial;
    // An open stream is held as a client holds it, by its body's reader: an unreferenced fetch Response is cancelled
    // when it is garbage-collected, which closes its connection and would free its place behind the test's back.
    const open: Array<{ abort: AbortController; reader: ReadableStreamDefaultReader<Uint8Array> }> = [];
    const stream = async (who: Who): Promise<Answer> => {
      const abort = new AbortController();
      const res = await fetch(`${at}/api/device_requests/${serial}/logs`, { headers: { authorization: `Bearer ${keys[who].key}` }, signal: abort.signal });
      const answer = { status: res.status, headers: res.headers, body: res.headers.get('content-type')?.includes('json') ? await res.json() : undefined };
      checker.check('GET', `/api/device_requests/${serial}/logs`, answer);
      if (res.status === 200) open.push({ abort, reader: res.body!.getReader() });
      else abort.abort();
      return answer;
    };
    try {
      assert.equal((await stream('rita')).status, 200);
      assert.equal((await stream('rita')).status, 200);
      const third = await stream('rita');
      assert.equal(third.status, 429, 'a third stream of one key');
      assert.ok(Number(third.headers.get('retry-after')) >= 1);
      assert.match((third.body as { detail: string }).detail, /key rita has 2 log streams open already/);
      assert.equal((await stream('ada')).status, 200, 'another key still has room');
      const full = await stream('ops');
      assert.equal(full.status, 429, 'past the overall bound');
      assert.match((full.body as { detail: string }).detail, /3 log streams are open on this API/);
      open.shift()!.abort.abort();
      await waitFor('the closed stream to free its place', async () => {
        const again = await stream('ops');
        return again.status === 200 ? again : undefined;
      });
    } finally {
      for (const held of open) held.abort.abort();
    }
  });

  test('writes are bounded per key: past the budget 429 with Retry-After, other keys unaffected, reads too', async () => {
    const at = await serve({ writesPerMinute: 3 });
    for (let i = 0; i < 3; i++) assert.equal((await call(at, 'POST', '/api/device_requests/VM-ZZZZ9/approve', { who: 'ada', body: {} })).status, 404);
    const refused = await call(at, 'POST', '/api/device_requests/VM-ZZZZ9/approve', { who: 'ada', body: {} });
    assert.equal(refused.status, 429);
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    assert.match((refused.body as { detail: string }).detail, /key ada has used its 3 writes per minute/);
    assert.equal((await call(at, 'POST', '/api/device_requests/VM-ZZZZ9/approve', { who: 'ops', body: {} })).status, 404, 'another key has its own budget');
    assert.equal((await call(at, 'GET', '/api/device_requests/VM-ZZZZ9', { who: 'ada' })).status, 404, 'reads are not writes');
  });

  test('the write budget refills continuously: one write per 60/perMinute seconds after a burst', () => {
    let now = 0;
    const limiter = new WriteLimiter(6, () => now); // a burst of 6, then one every 10 s
    for (let i = 0; i < 6; i++) assert.equal(limiter.take('k').ok, true);
    const refused = limiter.take('k');
    assert.ok(!refused.ok && refused.retryAfterS === 10, JSON.stringify(refused));
    now += 9_999;
    assert.equal(limiter.take('k').ok, false, 'not a full write yet');
    now += 1;
    assert.equal(limiter.take('k').ok, true, 'one write refilled');
    now += 3_600_000;
    for (let i = 0; i < 6; i++) assert.equal(limiter.take('k').ok, true, 'refilled to the burst, not beyond');
    assert.equal(limiter.take('k').ok, false);
    assert.equal(new WriteLimiter(0, () => now).take('k').ok, true, '0: no bound');
  });

  test('a method a known path does not serve is 405 with Allow; an unknown path is 404', async () => {
    const cases: Array<[string, string, string]> = [
      ['POST', '/api/device_requests/VM-ABCDE', 'GET, HEAD'],
      ['DELETE', '/api/device_requests', 'GET, POST, HEAD'],
      ['GET', '/api/device_requests/VM-ABCDE/approve', 'POST'],
      ['PUT', '/healthz', 'GET, HEAD'],
      ['GET', '/api/hooks/device_requests', 'POST'],
    ];
    for (const [method, path, allow] of cases) {
      const a = await call(base, method, path, { who: 'ops' });
      assert.equal(a.status, 405, `${method} ${path}`);
      assert.equal(a.headers.get('allow'), allow);
    }
    assert.equal((await call(base, 'GET', '/api/nothing-here', { who: 'ops' })).status, 404);
  });

  test('production refuses plain http endpoints for Proxmox and NetBird and a /metrics without its token', () => {
    const production = { NODE_ENV: 'production', PVEFLOW_CODEC_KEYS: `k1:${Buffer.alloc(32, 1).toString('base64')}`, METRICS_TOKEN: 'metrics-token-0123456789' };
    const pve = { PVE_TOKEN_ID: 'pveflow@pve!automation', PVE_TOKEN_SECRET: 'x' };
    assert.throws(
      () => loadConfig({ ...production, ...pve, PVE_ENDPOINT: 'http://pve.example:8006' }),
      (e: Error) => e instanceof ConfigError && /PVE_ENDPOINT=http:\/\/pve\.example:8006 is refused when NODE_ENV=production: use https/.test(e.message),
    );
    assert.throws(
      () => loadConfig({ ...production, NETBIRD_API_URL: 'http://netbird.example', NETBIRD_TOKEN: 'x' }),
      (e: Error) => e instanceof ConfigError && /NETBIRD_API_URL=.* is refused/.test(e.message),
    );
    assert.doesNotThrow(() => loadConfig({ ...production, ...pve, PVE_ENDPOINT: 'https://pve.example:8006', NETBIRD_API_URL: 'https://netbird.example', NETBIRD_TOKEN: 'x' }));
    assert.doesNotThrow(() => loadConfig({ ...pve, PVE_ENDPOINT: 'http://pve.example:8006' }), 'development may use http (the simulators, a lab)');
    const { METRICS_TOKEN: _, ...noToken } = production;
    assert.throws(
      () => loadConfig(noToken),
      (e: Error) => e instanceof ConfigError && /NODE_ENV=production needs METRICS_TOKEN/.test(e.message),
    );
  });

  test(
    "the dev server child is started without the API's secrets in its environment",
    { skip: resolveTemporalBinary('temporal').type !== 'existing-path' && !process.env.CI && 'no project Temporal binary' },
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'pveflow-devenv-'));
      const secrets = {
        API_KEYS: JSON.stringify({ keys: [{ id: 'x', role: 'operator', key: generateApiKey() }] }),
        WEBHOOK_SECRET: SECRET,
        PVE_TOKEN_SECRET: 'pve-secret-value',
        NETBIRD_TOKEN: 'nb-secret-value',
        PVEFLOW_CODEC_KEYS: 'k1:c2VjcmV0',
      };
      const saved = Object.fromEntries(Object.keys(secrets).map((k) => [k, process.env[k]]));
      Object.assign(process.env, secrets);
      let server;
      try {
        server = await startDevServer({ ip: '127.0.0.1', port: await freePort(), uiPort: await freePort(), dbFile: join(dir, 't.db'), namespace: 'default', searchAttributes: [], logFile: join(dir, 'log') });
      } finally {
        for (const [k, v] of Object.entries(saved))
          if (v === undefined) delete process.env[k];
          else process.env[k] = v;
      }
      try {
        assert.ok(server.pid, 'the project binary runs as our child');
        const environ = readFileSync(`/proc/${server.pid}/environ`, 'utf8').split('\0').filter(Boolean);
        const names = environ.map((e) => e.split('=')[0]);
        for (const name of Object.keys(secrets)) assert.ok(!names.includes(name), `${name} reached the dev server`);
        for (const value of Object.values(secrets)) assert.ok(!environ.some((e) => e.includes(value)), 'a secret value reached the dev server');
        assert.ok(names.includes('PATH'), 'what it needs to run is kept');
      } finally {
        await server.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
