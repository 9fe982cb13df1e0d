import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker, type WorkflowBundle } from '@temporalio/worker';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import { createApp } from '../src/api/app';
import { ApiKeyStore, generateApiKey, type ApiKeyEntry } from '../src/api/auth/apiKeys';
import { serialForDelivery } from '../src/api/reads/serials';
import { signWebhook } from '../src/api/intake/webhookSignature';
import { loadConfig } from '../src/config';
import { defaultRequestPolicy } from '../src/domain/requestPolicyRules';
import { simulatorTimings } from '../src/embedded/simulatorTimings';
import { startSimulatedWorld, type SimulatedWorld } from '../src/simulators/world';
import { requireTemporalBinary } from '../src/temporal/binaries';
import type { ClusterSyncResult } from '../src/contracts/types';
import { searchAttributeDefinitions } from '../src/contracts/searchAttributes';
import { createActivityDeps, createWorker } from '../src/worker';
import { ResponseChecker, type OpenApiDocument } from './support/openapiResponses';
import { validRequestBody } from './support/requests';
import { apiRequestDriver } from './support/apiRequestDriver';
import { waitFor } from './support/waitFor';
import { quietLogger } from './support/quietLogger';

/**
 * The HTTP API against a real Temporal dev server and a worker running the real workflows and activities on the
 * simulated world: who may do what, listing through visibility, the webhook intake, bad input, templates, the
 * OpenAPI document and the build log stream.
 */
const DAY = 24 * 3600_000;
const ORG_A = 'Acme Corp';
const ORG_B = 'Globex';
const run = process.pid.toString(36);
const WEBHOOK_SECRET = `whsec-${generateApiKey()}`;

const key = <E extends ApiKeyEntry>(entry: E) => ({ ...entry, key: generateApiKey() });
const keys = {
  requesterA: key({ id: 'rita', role: 'requester' as const, org: ORG_A, email: 'rita@acme.example' }),
  adminA: key({ id: 'ada', role: 'admin' as const, org: ORG_A, email: 'ada@acme.example' }),
  requesterB: key({ id: 'gus', role: 'requester' as const, org: ORG_B, email: 'gus@globex.example' }),
  adminB: key({ id: 'gia', role: 'admin' as const, org: ORG_B, email: 'gia@globex.example' }),
  operator: key({ id: 'ops', role: 'operator' as const }),
  requesterList: key({ id: 'lou', role: 'requester' as const, org: 'List Alpha', email: 'lou@alpha.example' }),
};
type KeyName = keyof typeof keys;

interface Answer {
  status: number;
  headers: Headers;
  body: any;
}

describe('HTTP API', () => {
  let env: TestWorkflowEnvironment;
  let world: SimulatedWorld;
  let worldDir: string;
  let stubDir: string;
  let server: Server;
  let base: string;
  const taskQueue = `api-${run}`;
  const syncQueue = `api-sync-${run}`;
  const workers: Array<{ worker: Worker; running: Promise<void> }> = [];
  let checker: ResponseChecker;

  before(async () => {
    env = await TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path: requireTemporalBinary('temporal') }, searchAttributes: searchAttributeDefinitions },
    });
    worldDir = mkdtempSync(join(tmpdir(), 'pveflow-api-world-'));
    world = await startSimulatedWorld({ dir: worldDir, timing: simulatorTimings.fast });
    const deps = createActivityDeps(loadConfig({ ...world.env }));
    // The activities' own Temporal client (clone slots) must reach this server, not a default address.
    deps.temporal.client = env.client;
    deps.settings.pollMinMs = 20;
    deps.settings.pollMaxMs = 200;
    const bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../src/workflows'), logger: quietLogger });
    const worker = await createWorker({ connection: env.nativeConnection, namespace: 'default', taskQueue, deps, workflowBundle: bundle });
    workers.push({ worker, running: worker.run() });

    // A stand-in clusterSync that completes with the result it is given: the templates route reads completed runs.
    stubDir = mkdtempSync(join(tmpdir(), 'pveflow-api-sync-'));
    writeFileSync(
      join(stubDir, 'clusterSync.js'),
      'exports.clusterSync = async function clusterSync(result) { return result; };\n' +
        // The real image catalogue: the API reads (and seeds) it wherever it checks an image.
        `exports.imageCatalogue = require(${JSON.stringify(resolve(__dirname, '..', 'src', 'workflows', 'imageCatalogue.ts'))}).imageCatalogue;\n`,
    );
    const syncWorker = await Worker.create({ connection: env.nativeConnection, namespace: 'default', taskQueue: syncQueue, workflowBundle: await stubBundle(stubDir) });
    workers.push({ worker: syncWorker, running: syncWorker.run() });

    const app = createApp({
      client: env.client,
      taskQueue,
      policy: defaultRequestPolicy,
      apiKeys: new ApiKeyStore(Object.values(keys)),
      webhookSecret: WEBHOOK_SECRET,
      timings: { logPollMs: 100, sseHeartbeatMs: 150 },
    });
    server = await listen(app);
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    checker = new ResponseChecker((await (await fetch(`${base}/api/openapi.json`)).json()) as OpenApiDocument);
  });

  after(async () => {
    if (server)
      await new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      });
    for (const { worker, running } of workers) {
      worker.shutdown();
      await running;
    }
    await world?.stop();
    await env?.teardown();
    for (const dir of [worldDir, stubDir]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const call = async (who: KeyName | undefined, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        ...(who ? { authorization: `Bearer ${keys[who].key}` } : {}),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    const answer = { status: res.status, headers: res.headers, body: text && res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text };
    // Every answer these tests receive is one the OpenAPI document describes (status, headers, body shape).
    checker.check(method, path, answer);
    return answer;
  };

  const requests = apiRequestDriver((method, path, as, body) => call(({ submitter: 'operator', approver: 'adminA', reader: 'operator' } as const)[as], method, path, body));

  /** A request in `org` whose period starts in a month: it waits, so approving it builds nothing. */
  const submit = async (org = ORG_A, overrides: Record<string, unknown> = {}): Promise<string> => {
    const now = Date.now();
    const period = { start: new Date(now + 30 * DAY).toISOString(), end: new Date(now + 37 * DAY).toISOString() };
    return (await requests.startPending({ ...validRequestBody({ client: org, period }), ...overrides })).serial;
  };

  const recordOf = (serial: string) => requests.existing(serial).record();

  /** Counts workflow starts through the app's client while `fn` runs. */
  const countingStarts = async (fn: () => Promise<void>): Promise<number> => {
    const workflow = env.client.workflow;
    const start = workflow.start.bind(workflow);
    let starts = 0;
    workflow.start = ((...args: Parameters<typeof start>) => {
      starts += 1;
      return start(...args);
    }) as typeof workflow.start;
    try {
      await fn();
    } finally {
      workflow.start = start;
    }
    return starts;
  };

  test('every operation but health, docs and the webhook needs a known API key: 401 with a message', async () => {
    const serial = 'VM-ZZZZZ';
    const operations: Array<[string, string]> = [
      ['POST', '/api/device_requests'],
      ['GET', '/api/device_requests'],
      ['GET', `/api/device_requests/${serial}`],
      ['GET', `/api/device_requests/${serial}/logs`],
      ['GET', `/api/device_requests/${serial}/credentials`],
      ...['approve', 'reject', 'cancel', 'rebuild', 'extend', 'complete'].map((a): [string, string] => ['POST', `/api/device_requests/${serial}/${a}`]),
      ['GET', '/api/templates'],
      ['GET', '/api/images'],
      ['GET', '/api/session'],
    ];
    for (const [method, path] of operations) {
      for (const authorization of [undefined, 'Bearer pvf_not-a-key-anyone-was-given', `Basic ${Buffer.from('ops:x').toString('base64')}`, `Bearer ${keys.operator.key}x`]) {
        const r = await fetch(`${base}${path}`, { method, headers: authorization ? { authorization } : {} });
        const body = await json(r);
        assert.equal(r.status, 401, `${method} ${path} with ${authorization ?? 'no key'}`);
        assert.match(body.detail, /Authorization: Bearer/);
        assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer/);
      }
    }
    for (const open of ['/healthz', '/api/openapi.json', '/api/docs']) assert.equal((await fetch(`${base}${open}`)).status, 200, open);
    const manifest = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string };
    assert.deepEqual(await json(await fetch(`${base}/healthz`)), { status: 'ok', version: manifest.version }, '/healthz names the release the process runs');
  });

  test('authorization matrix: every role × every operation × own and other org', async () => {
    type Cell = { who: 'requester' | 'admin' | 'operator'; scope: 'own' | 'other' | 'any'; key: KeyName };
    const cells: Cell[] = [
      { who: 'requester', scope: 'own', key: 'requesterA' },
      { who: 'requester', scope: 'other', key: 'requesterB' },
      { who: 'admin', scope: 'own', key: 'adminA' },
      { who: 'admin', scope: 'other', key: 'adminB' },
      { who: 'operator', scope: 'any', key: 'operator' },
    ];
    const decides = ['approve', 'reject', 'cancel', 'rebuild'];
    const onRequest = ['read', 'logs', ...decides, 'extend', 'complete'];
    /** The expected answer, from the rules as the issue states them (not from the code under test). */
    const expected = (op: string, c: Cell): 'allowed' | 403 | 404 => {
      if (c.who === 'requester' && decides.includes(op)) return 403;
      if (c.scope !== 'other' || op === 'templates') return 'allowed';
      return onRequest.includes(op) ? 404 : 403; // submit for, or list, another org: refused outright
    };
    const allowedStatus: Record<string, number[]> = { submit: [201], list: [200], read: [200], logs: [200], templates: [200, 503] };

    // Denied calls all aim at one request, which must come out untouched.
    const target = await submit(ORG_A);
    const now = Date.now();
    const bodies: Record<string, unknown> = {
      reject: { reason: 'not this quarter' },
      extend: { new_end: new Date(now + 40 * DAY).toISOString() },
    };
    const attempt = async (op: string, c: Cell, serial: string): Promise<Answer> => {
      switch (op) {
        case 'submit':
          return call(c.key, 'POST', '/api/device_requests', validRequestBody({ client: ORG_A }));
        case 'list':
          return call(c.key, 'GET', `/api/device_requests?org=${encodeURIComponent(ORG_A)}`);
        case 'read':
          return call(c.key, 'GET', `/api/device_requests/${serial}`);
        case 'logs': {
          // A stream of a waiting request stays open: read the answer's head, then hang up.
          const abort = new AbortController();
          const res = await fetch(`${base}/api/device_requests/${serial}/logs`, { headers: { authorization: `Bearer ${keys[c.key].key}` }, signal: abort.signal });
          const answer = { status: res.status, headers: res.headers, body: res.headers.get('content-type')?.includes('json') ? await json(res) : undefined };
          abort.abort();
          return answer;
        }
        case 'templates':
          return call(c.key, 'GET', '/api/templates');
        default:
          return call(c.key, 'POST', `/api/device_requests/${serial}/${op}`, bodies[op] ?? {});
      }
    };

    const failures: string[] = [];
    for (const op of ['submit', 'list', 'read', 'logs', ...decides, 'extend', 'complete', 'templates']) {
      for (const c of cells) {
        const want = expected(op, c);
        // An allowed action gets a request of its own, so that each reaches the workflow in the same state.
        const serial = want === 'allowed' && !['read', 'logs'].includes(op) && onRequest.includes(op) ? await submit(ORG_A) : target;
        const r = await attempt(op, c, serial);
        const label = `${c.who} (${c.scope} org) ${op}: got ${r.status} ${JSON.stringify(r.body)}`;
        if (want === 'allowed') {
          // An action is allowed when the workflow itself answered: done (200) or refused for its state (409).
          const ok = allowedStatus[op] ? allowedStatus[op].includes(r.status) : r.status === 200 || (r.status === 409 && r.body.error === 'refused');
          if (!ok) failures.push(`${label}, expected it allowed`);
          if (op === 'logs' && r.status === 200 && !r.headers.get('content-type')?.startsWith('text/event-stream')) failures.push(`${label}: not an event stream`);
        } else {
          if (r.status !== want) failures.push(`${label}, expected ${want}`);
          else if (!r.body?.detail) failures.push(`${label}: no message`);
        }
      }
    }
    assert.deepEqual(failures, []);

    const untouched = await recordOf(target);
    assert.equal(untouched.status, 'Pending', 'no denied call changed the request');
    assert.equal(untouched.timeline.length, 1, JSON.stringify(untouched.timeline));

    // Who acted is the key's holder, whatever the body might claim.
    const approved = await submit(ORG_A);
    assert.equal((await call('adminA', 'POST', `/api/device_requests/${approved}/approve`, { note: 'fine' })).status, 200);
    const spoofed = await call('adminA', 'POST', `/api/device_requests/${approved}/cancel`, { by: 'someone-else' });
    assert.equal(spoofed.status, 400, 'by is not a body field');
    const rec = await recordOf(approved);
    assert.equal(rec.status, 'Approved');
    assert.ok(
      rec.timeline.some((t: { by?: string }) => t.by === 'ada@acme.example'),
      JSON.stringify(rec.timeline),
    );
    const cancelled = await call('operator', 'POST', `/api/device_requests/${approved}/cancel`, {});
    assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body));
    assert.ok((await recordOf(approved)).timeline.some((t: { by?: string }) => t.by === 'operator:ops'));
  });

  test('the list filters by org, status, consultant and period overlap, pages with a token, and shows a requester only their org', async () => {
    const c1 = `c1-${run}@consultancy.example`;
    const c2 = `c2-${run}@consultancy.example`;
    const period = (start: string, end: string) => ({ period: { start, end } });
    const r1 = await submit('List Alpha', { consultants: [c1], ...period('2030-12-01T09:00:00Z', '2030-12-10T18:00:00Z') });
    const r2 = await submit('List Alpha', { consultants: [c2], ...period('2031-01-05T09:00:00Z', '2031-01-20T18:00:00Z') });
    const r3 = await submit('List Beta', { consultants: [c1], ...period('2030-12-05T09:00:00Z', '2030-12-08T18:00:00Z') });
    assert.equal((await call('operator', 'POST', `/api/device_requests/${r2}/approve`, {})).status, 200);

    const serials = async (who: KeyName, query: string) => {
      const r = await call(who, 'GET', `/api/device_requests?${query}`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return (r.body.items as Array<{ serial: string }>).map((i) => i.serial).sort();
    };
    const q = (o: Record<string, string>) => new URLSearchParams(o).toString();
    // Visibility catches up with the workflows' own search attribute updates shortly after.
    await waitFor('the approval in visibility', async () => ((await serials('operator', q({ org: 'List Alpha', status: 'Approved' }))).join() === r2 ? true : undefined), 20_000);

    assert.deepEqual(await serials('operator', q({ org: 'List Alpha' })), [r1, r2].sort());
    assert.deepEqual(await serials('operator', q({ consultant: c1 })), [r1, r3].sort());
    assert.deepEqual(await serials('operator', q({ consultant: c1, status: 'Pending', org: 'List Beta' })), [r3]);
    // Period overlap: r1 (Dec 1–10) overlaps Dec 9–31; r3 (Dec 5–8) and r2 (January) do not.
    assert.deepEqual(await serials('operator', q({ from: '2030-12-09T00:00:00Z', to: '2030-12-31T00:00:00Z' })), [r1]);
    assert.deepEqual(await serials('operator', q({ from: '2030-12-06T00:00:00Z', to: '2031-01-05T09:00:00Z' })), [r1, r2, r3].sort());

    const item = (await call('operator', 'GET', `/api/device_requests?${q({ consultant: c2 })}`)).body.items[0];
    assert.deepEqual({ serial: item.serial, org: item.org, status: item.status, consultants: item.consultants, open: item.open }, { serial: r2, org: 'List Alpha', status: 'Approved', consultants: [c2], open: true });
    assert.equal(item.period.start, '2031-01-05T09:00:00.000Z');

    // One per page, with the token carrying on where the last page stopped.
    const seen: string[] = [];
    let token: string | undefined;
    let firstToken: string | undefined;
    for (let page = 0; page < 4; page++) {
      const r = await call('operator', 'GET', `/api/device_requests?${q({ org: 'List Alpha', page_size: '1', ...(token ? { page_token: token } : {}) })}`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.ok(r.body.items.length <= 1);
      seen.push(...r.body.items.map((i: { serial: string }) => i.serial));
      token = r.body.next_page_token;
      firstToken ??= token;
      if (!token) break;
    }
    assert.deepEqual(seen.sort(), [r1, r2].sort());

    // A requester sees their own org only, with or without asking; another org's list is refused.
    const own = await serials('requesterList', '');
    assert.ok(own.includes(r1) && own.includes(r2) && !own.includes(r3), own.join());
    assert.equal((await call('requesterList', 'GET', `/api/device_requests?${q({ org: 'List Beta' })}`)).status, 403);
    assert.ok(!(await serials('requesterA', '')).some((s) => [r1, r2, r3].includes(s)));

    // A token that was not handed out (here: one altered in transit) is refused at once, not sent on to Temporal.
    assert.ok(firstToken);
    const altered = firstToken.slice(0, 12) + (firstToken[12] === 'A' ? 'B' : 'A') + firstToken.slice(13);
    const badToken = await call('operator', 'GET', `/api/device_requests?${q({ page_token: altered })}`);
    assert.equal(badToken.status, 400, JSON.stringify(badToken.body));
    assert.equal(badToken.body.issues[0].field, 'page_token');

    // A forged one, made the way anyone can (any bytes, an unkeyed checksum in front): refused at once, never sent on.
    const forgedRaw = Buffer.from('forged visibility page token');
    const forged = Buffer.concat([createHash('sha256').update(forgedRaw).digest().subarray(0, 8), forgedRaw]).toString('base64url');
    const startedAt = Date.now();
    const forgedAnswer = await call('operator', 'GET', `/api/device_requests?${q({ page_token: forged })}`);
    assert.equal(forgedAnswer.status, 400, JSON.stringify(forgedAnswer.body));
    assert.equal(forgedAnswer.body.issues[0].field, 'page_token');
    assert.ok(Date.now() - startedAt < 2_000, 'answered at once');
  });

  test('the webhook checks the HMAC signature over time, delivery id and body; a redelivery starts nothing new', async () => {
    const deliveryId = `dlv-${run}-${Date.now()}`;
    const raw = JSON.stringify(validRequestBody({ client: ORG_B, name: 'hooked' }));
    const deliver = (body: string, headers: Record<string, string>) => fetch(`${base}/api/hooks/device_requests`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
    const signed = (body: string, id = deliveryId) => ({ 'x-pveflow-delivery': id, 'x-pveflow-signature': signWebhook(WEBHOOK_SECRET, id, body) });

    const refusedStarts = await countingStarts(async () => {
      const unsigned = await deliver(raw, { 'x-pveflow-delivery': deliveryId });
      assert.equal(unsigned.status, 401);
      const wrongSecret = await deliver(raw, { 'x-pveflow-delivery': deliveryId, 'x-pveflow-signature': signWebhook('another-secret-entirely', deliveryId, raw) });
      assert.equal(wrongSecret.status, 401);
      assert.match((await json(wrongSecret)).detail, /signature does not match/);
      const tampered = await deliver(raw.replace('hooked', 'hacked'), signed(raw));
      assert.equal(tampered.status, 401, 'the signature covers the exact bytes');
      const bodyOnly = await deliver(raw, { 'x-pveflow-delivery': deliveryId, 'x-pveflow-signature': `sha256=${createHmac('sha256', WEBHOOK_SECRET).update(raw).digest('hex')}` });
      assert.equal(bodyOnly.status, 401, 'the old body-only signature is refused');
      assert.match((await json(bodyOnly)).detail, /t=<unix seconds>,v1=/);
      const noDelivery = await deliver(raw, { 'x-pveflow-signature': signWebhook(WEBHOOK_SECRET, deliveryId, raw) });
      assert.equal(noDelivery.status, 400);
      assert.equal((await json(noDelivery)).issues[0].field, 'x-pveflow-delivery');
      const badBody = JSON.stringify(validRequestBody({ consultants: ['not-an-email'] }));
      const invalid = await deliver(badBody, signed(badBody, `${deliveryId}-bad`));
      assert.equal(invalid.status, 400);
      assert.equal((await json(invalid)).issues[0].field, 'consultants.0');
    });
    assert.equal(refusedStarts, 0, 'nothing unsigned or invalid was started');

    const first = await deliver(raw, signed(raw));
    assert.equal(first.status, 201);
    const { serial, duplicate } = await json(first);
    assert.equal(duplicate, false);
    assert.equal(serial, serialForDelivery(deliveryId, 0), 'the serial is derived from the delivery id');
    const runId = (await env.client.workflow.getHandle(`vm-request-${serial}`).describe()).runId;

    for (let i = 0; i < 2; i++) {
      const again = await deliver(raw, signed(raw));
      assert.equal(again.status, 200);
      assert.deepEqual(await json(again), { serial, duplicate: true });
    }
    assert.equal((await env.client.workflow.getHandle(`vm-request-${serial}`).describe()).runId, runId, 'still the first run');
    const found = await waitFor('the request in visibility', async () => {
      const runs = [];
      for await (const wf of env.client.workflow.list({ query: `Serial = "${serial}"` })) runs.push(wf.runId);
      return runs.length ? runs : undefined;
    });
    assert.deepEqual(found, [runId], 'one workflow for the serial');

    const reused = JSON.stringify(validRequestBody({ client: ORG_B, name: 'different' }));
    const conflict = await deliver(reused, signed(reused));
    assert.equal(conflict.status, 409, 'a delivery id reused for another body is refused, not merged');

    // The request is the org's like any other: its admin sees it, another org does not.
    assert.equal((await call('adminB', 'GET', `/api/device_requests/${serial}`)).status, 200);
    assert.equal((await call('adminA', 'GET', `/api/device_requests/${serial}`)).status, 404);

    // Without a secret the intake is off, and says how to turn it on.
    const closed = createApp({ client: env.client, taskQueue, policy: defaultRequestPolicy, apiKeys: new ApiKeyStore([]) });
    const closedServer = await listen(closed);
    try {
      const r = await fetch(`http://127.0.0.1:${(closedServer.address() as AddressInfo).port}/api/hooks/device_requests`, { method: 'POST', headers: signed(raw), body: raw });
      assert.equal(r.status, 503);
      assert.match((await json(r)).detail, /WEBHOOK_SECRET/);
    } finally {
      closedServer.close();
    }
  });

  test('an Idempotency-Key makes a retried submission find its request: one workflow, 201 then 200, another body is 409', async () => {
    const idemKey = `order-${run}-${Date.now()}`;
    const body = validRequestBody({ client: ORG_A, name: 'idem', period: { start: new Date(Date.now() + 30 * DAY).toISOString(), end: new Date(Date.now() + 37 * DAY).toISOString() } });
    const headers = { 'idempotency-key': idemKey };

    const first = await call('requesterA', 'POST', '/api/device_requests', body, headers);
    assert.equal(first.status, 201, JSON.stringify(first.body));
    assert.equal(first.headers.get('idempotent-replayed'), null);
    const serial: string = first.body.serial;
    const runId = (await env.client.workflow.getHandle(`vm-request-${serial}`).describe()).runId;

    // A retry, and one from another key of the same org: the same request, as it stands, and nothing new started.
    for (const who of ['requesterA', 'adminA'] as const) {
      const again = await call(who, 'POST', '/api/device_requests', body, headers);
      assert.equal(again.status, 200, JSON.stringify(again.body));
      assert.equal(again.headers.get('idempotent-replayed'), 'true');
      assert.equal(again.headers.get('location'), `/api/device_requests/${serial}`);
      assert.deepEqual(again.body, { serial, status: 'Pending' });
    }
    // Defaults count as sent: leaving out `cores` is the same body as sending the default.
    const { cores: _omitted, ...withoutCores } = { ...body, cores: 2 };
    const sameWithDefault = await call('requesterA', 'POST', '/api/device_requests', { ...body, cores: 2 }, { 'idempotency-key': `${idemKey}-d` });
    assert.equal(sameWithDefault.status, 201);
    assert.equal((await call('requesterA', 'POST', '/api/device_requests', withoutCores, { 'idempotency-key': `${idemKey}-d` })).status, 200);

    const changed = await call('requesterA', 'POST', '/api/device_requests', { ...body, memory_mib: 8192 }, headers);
    assert.equal(changed.status, 409);
    assert.match(changed.body.detail, new RegExp(`Idempotency-Key ${idemKey} was already used for request ${serial} with a different body`));

    // Keys are per org: another org's same key is its own request.
    const otherOrg = await call('requesterB', 'POST', '/api/device_requests', { ...body, client: ORG_B, requester: keys.requesterB.email }, headers);
    assert.equal(otherOrg.status, 201);
    assert.notEqual(otherOrg.body.serial, serial);

    assert.equal((await env.client.workflow.getHandle(`vm-request-${serial}`).describe()).runId, runId, 'still the first run');
    const runs = await waitFor('the request in visibility', async () => {
      const found = [];
      for await (const wf of env.client.workflow.list({ query: `Serial = "${serial}"` })) found.push(wf.runId);
      return found.length ? found : undefined;
    });
    assert.deepEqual(runs, [runId], 'one workflow for the key');

    const starts = await countingStarts(async () => {
      for (const bad of ['short', 'has space in it', 'x'.repeat(129), 'no/slashes/please']) {
        const r = await call('requesterA', 'POST', '/api/device_requests', body, { 'idempotency-key': bad });
        assert.equal(r.status, 400, bad);
        assert.equal(r.body.issues[0].field, 'idempotency-key');
        assert.match(r.body.issues[0].reason, /8-128 characters/);
      }
    });
    assert.equal(starts, 0, 'nothing is started for a malformed key');
  });

  test('a submission whose start Temporal does not confirm in time says whether a retry is safe, and a keyed retry creates one request', async () => {
    const slow = createApp({ client: env.client, taskQueue, policy: defaultRequestPolicy, apiKeys: new ApiKeyStore(Object.values(keys)), timings: { temporalTimeoutMs: 1 } });
    const slowServer = await listen(slow);
    const slowBase = `http://127.0.0.1:${(slowServer.address() as AddressInfo).port}`;
    const idemKey = `late-${run}-${Date.now()}`;
    const body = validRequestBody({ client: ORG_A, name: 'late', period: { start: new Date(Date.now() + 30 * DAY).toISOString(), end: new Date(Date.now() + 37 * DAY).toISOString() } });
    const post = async (at: string, headers: Record<string, string>) => {
      const r = await fetch(`${at}/api/device_requests`, {
        method: 'POST',
        headers: { authorization: `Bearer ${keys.requesterA.key}`, 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
      });
      return { status: r.status, body: await json(r) };
    };
    let keyed: { status: number; body: any };
    try {
      keyed = await post(slowBase, { 'idempotency-key': idemKey });
      // 504 when Temporal's deadline is what cut the start short, 503 when the call failed otherwise first: either
      // way its outcome is unknown, and the answer must say so.
      assert.ok([503, 504].includes(keyed.status), JSON.stringify(keyed.body));
      assert.match(keyed.body.detail, new RegExp(`request ${keyed.body.serial} may or may not have been created\\. Retry with the same Idempotency-Key`));
      const unkeyed = await post(slowBase, {});
      assert.ok([503, 504].includes(unkeyed.status), JSON.stringify(unkeyed.body));
      assert.match(unkeyed.body.detail, new RegExp(`GET /api/device_requests/${unkeyed.body.serial} tells`));
      assert.match(unkeyed.body.detail, /Idempotency-Key header/);
    } finally {
      slowServer.close();
    }
    const retried = await post(base, { 'idempotency-key': idemKey });
    assert.ok([200, 201].includes(retried.status), JSON.stringify(retried.body));
    assert.equal(retried.body.serial, keyed.body.serial, 'the retry lands on the serial the 504 named');
    const again = await post(base, { 'idempotency-key': idemKey });
    assert.equal(again.status, 200);
    const runs = await waitFor('the request in visibility', async () => {
      const found = [];
      for await (const wf of env.client.workflow.list({ query: `Serial = "${retried.body.serial}"` })) found.push(wf.runId);
      return found.length ? found : undefined;
    });
    assert.equal(runs.length, 1, 'one workflow, however the first start ended');
  });

  test('past the bound on starts in flight a submission is refused at once: 503 with Retry-After, and nothing is started', async () => {
    const full = createApp({ client: env.client, taskQueue, policy: defaultRequestPolicy, apiKeys: new ApiKeyStore(Object.values(keys)), timings: { maxStartsInFlight: 0 } });
    const fullServer = await listen(full);
    try {
      const starts = await countingStarts(async () => {
        for (const headers of [{}, { 'idempotency-key': `busy-${run}-${Date.now()}` }] as Array<Record<string, string>>) {
          const r = await fetch(`http://127.0.0.1:${(fullServer.address() as AddressInfo).port}/api/device_requests`, {
            method: 'POST',
            headers: { authorization: `Bearer ${keys.operator.key}`, 'content-type': 'application/json', ...headers },
            body: JSON.stringify(validRequestBody()),
          });
          assert.equal(r.status, 503);
          assert.equal(r.headers.get('retry-after'), '1');
          const { detail } = await json(r);
          assert.match(detail, /nothing was created for this one/);
          assert.equal(/same Idempotency-Key/.test(detail), 'idempotency-key' in headers, 'a keyed caller is told to keep its key');
        }
      });
      assert.equal(starts, 0);
    } finally {
      fullServer.close();
    }
  });

  test('bad input is 400 naming the field and the reason, and nothing is started or changed', async () => {
    const target = await submit(ORG_A);
    const starts = await countingStarts(async () => {
      const cases: Array<[string, string, string, unknown, string]> = [
        ['missing consultants', 'POST', '/api/device_requests', validRequestBody({ consultants: undefined }), 'consultants'],
        ['end before start', 'POST', '/api/device_requests', validRequestBody({ period: { start: '2026-12-10T00:00:00Z', end: '2026-12-01T00:00:00Z' } }), 'period.end'],
        ['not an OpenSSH key', 'POST', '/api/device_requests', validRequestBody({ ssh_keys: ['ssh-rsa'] }), 'ssh_keys.0'],
        ['unknown field', 'POST', '/api/device_requests', validRequestBody({ root_password: 'x' }), 'root_password'],
        ['who acts is not a body field', 'POST', `/api/device_requests/${target}/approve`, { by: 'someone' }, 'by'],
        ['reject without a reason', 'POST', `/api/device_requests/${target}/reject`, {}, 'reason'],
        ['extend to a non-date', 'POST', `/api/device_requests/${target}/extend`, { new_end: 'next friday' }, 'new_end'],
        ['extend without a date', 'POST', `/api/device_requests/${target}/extend`, {}, 'new_end'],
        ['a serial that is not one', 'GET', '/api/device_requests/vm-1', undefined, 'serial'],
        ['an unknown filter', 'GET', '/api/device_requests?state=Pending', undefined, 'state'],
        ['a status that does not exist', 'GET', '/api/device_requests?status=Running', undefined, 'status'],
        ['a period the wrong way round', 'GET', '/api/device_requests?from=2030-12-31T00:00:00Z&to=2030-12-01T00:00:00Z', undefined, 'to'],
        ['a page size out of range', 'GET', '/api/device_requests?page_size=1000', undefined, 'page_size'],
        ['a consultant filter that is not an email', 'GET', '/api/device_requests?consultant=%22%20OR%20true', undefined, 'consultant'],
        // Dates are years 2000 to 2100 as written, at the schema: beyond, a date is no lease and no timer Temporal can hold.
        ['a period end in year 10000, written with an offset', 'POST', '/api/device_requests', validRequestBody({ period: { start: '2030-06-03T09:00:00Z', end: '9999-12-31T23:00:00-05:00' } }), 'period.end'],
        ['a period in 9999', 'POST', '/api/device_requests', validRequestBody({ period: { start: '9999-06-01T00:00:00Z', end: '9999-06-10T00:00:00Z' } }), 'period.start'],
        ['a period before 2000', 'POST', '/api/device_requests', validRequestBody({ period: { start: '1999-12-31T00:00:00Z', end: '2030-06-10T00:00:00Z' } }), 'period.start'],
        ['extend to 9999', 'POST', `/api/device_requests/${target}/extend`, { new_end: '9999-12-31T23:59:59Z' }, 'new_end'],
        ['a filter from year 0', 'GET', '/api/device_requests?from=0000-01-01T00:00:00Z', undefined, 'from'],
        ['a filter to 9999', 'GET', '/api/device_requests?to=9999-12-31T23:59:59.999Z', undefined, 'to'],
      ];
      for (const [what, method, path, body, field] of cases) {
        const r = await call('operator', method, path, body);
        assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.body)}`);
        const fields = r.body.issues.map((i: { field: string }) => i.field);
        assert.ok(fields.includes(field), `${what}: expected field ${field}, got ${fields.join(', ')}`);
        assert.ok(
          r.body.issues.every((i: { reason: string }) => i.reason.length > 0),
          what,
        );
      }
      const notJson = await call('operator', 'POST', `/api/device_requests/${target}/approve`, '{"note": ');
      assert.equal(notJson.status, 400);
      assert.equal((await call('operator', 'GET', '/api/device_requests/VM-ZZZZZ')).status, 404);
      assert.equal((await call('operator', 'POST', '/api/device_requests/VM-ZZZZZ/complete', {})).status, 404);
    });
    assert.equal(starts, 0, 'no workflow was started');
    const rec = await recordOf(target);
    assert.equal(rec.status, 'Pending');
    assert.equal(rec.timeline.length, 1, 'nothing changed the request');
  });

  test('templates come from the newest completed cluster sync, and 503 says why before the first', async () => {
    // The stand-in sync runs on its own task queue, and an instance lists only its own syncs: ask the instance whose
    // task queue that is (the same keys, the same Temporal).
    const syncInstance = await listen(createApp({ client: env.client, taskQueue: syncQueue, policy: defaultRequestPolicy, apiKeys: new ApiKeyStore(Object.values(keys)) }));
    const templates = async () => {
      const res = await fetch(`http://127.0.0.1:${(syncInstance.address() as AddressInfo).port}/api/templates`, { headers: { authorization: `Bearer ${keys.requesterA.key}` }, signal: AbortSignal.timeout(30_000) });
      return { status: res.status, body: (await res.json()) as Answer['body'] };
    };
    try {
      const before = await templates();
      assert.equal(before.status, 503);
      assert.match(before.body.detail, /no cluster sync has completed yet/);

      const result = (at: string, name: string): ClusterSyncResult => ({
        at,
        vmsSeen: 3,
        requestsChecked: 0,
        drifts: [],
        orphans: [],
        orphanCount: 0,
        templates: [{ vmid: 9000, name, node: 'pve1', cores: 2, memoryMiB: 2048 }],
      });
      for (const [i, r] of [result('2026-01-01T00:00:00.000Z', 'debian-11'), result('2026-01-01T00:01:00.000Z', 'debian-12-cloudinit')].entries()) {
        await env.client.workflow.execute('clusterSync', { taskQueue: syncQueue, workflowId: `sync-${run}-${i}`, args: [r] });
      }
      const listed = await waitFor(
        'the newest sync in visibility',
        async () => {
          const r = await templates();
          return r.status === 200 && r.body.synced_at === '2026-01-01T00:01:00.000Z' ? r.body : undefined;
        },
        20_000,
      );
      assert.deepEqual(listed.templates, [{ vmid: 9000, name: 'debian-12-cloudinit', node: 'pve1', cores: 2, memoryMiB: 2048 }]);
      assert.equal((await call('requesterA', 'GET', '/api/templates')).status, 503, "another instance's syncs are not this one's");
    } finally {
      await new Promise<void>((ok) => syncInstance.close(() => ok()));
    }
  });

  test('the OpenAPI document is valid, covers every route, and states what the API checks', async () => {
    const res = await fetch(`${base}/api/openapi.json`);
    assert.equal(res.status, 200);
    const doc = await json(res);
    assert.match(doc.openapi, /^3\.0\.\d$/);
    assert.ok(doc.info.title && doc.info.version);

    const expected = [
      'post /api/device_requests',
      'get /api/device_requests',
      'get /api/device_requests/{serial}',
      'get /api/device_requests/{serial}/logs',
      'get /api/device_requests/{serial}/credentials',
      ...['approve', 'reject', 'cancel', 'rebuild', 'extend', 'complete'].map((a) => `post /api/device_requests/{serial}/${a}`),
      'post /api/classes',
      'get /api/classes/{id}',
      ...['approve', 'reject', 'cancel', 'complete'].map((a) => `post /api/classes/{id}/${a}`),
      'get /api/templates',
      'get /api/images',
      'get /api/session',
      'post /api/hooks/device_requests',
      'get /healthz',
      'get /readyz',
      'get /api/openapi.json',
      'get /api/docs',
      // Day-2 operations on a request's VM.
      ...['power', 'reconfigure', 'migrate', 'snapshots'].map((a) => `post /api/device_requests/{serial}/${a}`),
      'get /api/device_requests/{serial}/snapshots',
      'post /api/device_requests/{serial}/snapshots/{name}/revert',
      'delete /api/device_requests/{serial}/snapshots/{name}',
      // The image catalogue (issue 31).
      'post /api/images',
      'get /api/images/{name}',
      'patch /api/images/{name}',
      'delete /api/images/{name}',
      'post /api/images/{name}/retire',
      'get /api/image-imports/{name}',
      'delete /api/image-imports/{name}',
      // A day-2 operation that outlived the API's wait is read here (issue 27).
      'get /api/device_requests/{serial}/operations/{operation_id}',
      // API keys issued at run time (issue 30).
      'get /api/api_keys',
      'post /api/api_keys',
      'delete /api/api_keys/{id}',
    ];
    const documented = Object.entries(doc.paths as Record<string, Record<string, any>>).flatMap(([path, item]) => Object.keys(item).map((m) => `${m} ${path}`));
    assert.deepEqual(documented.sort(), expected.sort());

    const ids = new Set<string>();
    const refs: string[] = [];
    JSON.stringify(doc, (k, v) => (k === '$ref' ? (refs.push(v), v) : v));
    for (const ref of refs) {
      const target = ref
        .replace(/^#\//, '')
        .split('/')
        .reduce((o: any, p) => o?.[p], doc);
      assert.ok(target, `${ref} resolves`);
    }
    for (const op of documented) {
      const [method, path] = op.split(' ') as [string, string];
      const operation = doc.paths[path][method];
      assert.ok(operation.operationId && !ids.has(operation.operationId), `${op} has a unique operationId`);
      ids.add(operation.operationId);
      assert.ok(Object.keys(operation.responses).length > 0, `${op} documents its answers`);
      for (const p of path.match(/\{(\w+)\}/g) ?? []) {
        assert.ok(
          operation.parameters?.some((x: any) => x.in === 'path' && `{${x.name}}` === p && x.required),
          `${op} declares ${p}`,
        );
      }
      // Every documented operation exists: none falls through to the API's "no operation" answer.
      const r = await fetch(`${base}${path.replace('{serial}', 'VM-ZZZZZ').replace('{id}', 'CL-ZZZZZ')}`, { method: method.toUpperCase(), signal: AbortSignal.timeout(10_000) });
      const text = await r.text();
      assert.ok(!/no operation (GET|POST|PUT|PATCH|DELETE) \//.test(text), `${op} is served (got ${r.status} ${text.slice(0, 200)})`);
    }

    // The schemas are JSON Schema that accepts what the API accepts and refuses what it refuses.
    const ajv = new Ajv({ strict: false, allErrors: true });
    addFormats(ajv);
    for (const [name, schema] of Object.entries(doc.components.schemas)) ajv.addSchema(schema as object, `#/components/schemas/${name}`);
    const submission = ajv.getSchema('#/components/schemas/DeviceRequestSubmission')!;
    assert.ok(submission(validRequestBody()), JSON.stringify(submission.errors));
    assert.equal(submission(validRequestBody({ root_password: 'x' })), false);
    assert.equal(submission(validRequestBody({ consultants: [] })), false);
    const listParams = doc.paths['/api/device_requests'].get.parameters.map((p: { name: string }) => p.name).sort();
    assert.deepEqual(listParams, ['class', 'consultant', 'from', 'org', 'page_size', 'page_token', 'status', 'to']);
    assert.ok(doc.paths['/api/device_requests'].post.security.length > 0);
    assert.equal(doc.paths['/api/hooks/device_requests'].post.security, undefined, 'the webhook is signed, not keyed');

    const page = await (await fetch(`${base}/api/docs`)).text();
    for (const op of expected) assert.ok(page.includes(`<code>${op.split(' ')[1]}</code>`), `the docs page lists ${op}`);
  });

  test('an action answers with the request as it left it: Approved with when it builds, then Cancelled', async () => {
    const serial = await submit(ORG_A);
    const record = await recordOf(serial);
    const approved = await call('adminA', 'POST', `/api/device_requests/${serial}/approve`, {});
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    assert.deepEqual(approved.body, { serial, status: 'Approved', builds_at: record.request.period.start });
    const end = new Date(Date.parse(record.request.period.end) + DAY).toISOString();
    const extended = await call('requesterA', 'POST', `/api/device_requests/${serial}/extend`, { new_end: end });
    assert.deepEqual(extended.body, { serial, status: 'Approved', period_end: end });
    const cancelled = await call('adminA', 'POST', `/api/device_requests/${serial}/cancel`, { note: 'not needed' });
    assert.deepEqual(cancelled.body, { serial, status: 'Cancelled' });
    const completed = await call('adminA', 'POST', `/api/device_requests/${serial}/complete`, {});
    assert.deepEqual(completed.body, { serial, status: 'Completing' });
  });

  test('the log stream sends the build log live as Server-Sent Events, ends with the build, replays it after, and resumes', async () => {
    const request = await requests.startPending(validRequestBody({ client: ORG_A, name: 'streamed' }));
    const { serial } = request;
    const live = openStream(`${base}/api/device_requests/${serial}/logs`, keys.requesterA.key);
    assert.equal((await request.approve()).status, 200);
    const events = await live.done;

    assert.equal(live.status, 200);
    assert.match(live.contentType ?? '', /^text\/event-stream/);
    assert.ok(live.heartbeats > 0, 'heartbeat comments keep a quiet stream open');
    // In order: the lines of a stage come before the status they lead to, the build's last line before Fulfilled.
    const fulfilledAt = events.findIndex((e) => e.event === 'status' && JSON.parse(e.data).status === 'Fulfilled');
    assert.ok(fulfilledAt > 0, 'a Fulfilled status event');
    assert.ok(!events.slice(fulfilledAt).some((e) => e.event === 'log'), `no log line after Fulfilled: ${events.map((e) => e.event).join(' ')}`);
    assert.ok(
      events.slice(0, fulfilledAt).some((e) => e.event === 'log' && /guest IPv4/.test(JSON.parse(e.data).message)),
      'the guest IPv4 line before Fulfilled',
    );
    const stageOrder = [...new Set(events.filter((e) => e.event === 'log').map((e) => JSON.parse(e.data).stage as string))];
    events.forEach((e, i) => {
      const stage = e.event === 'status' ? JSON.parse(e.data).build?.stage : undefined;
      if (!stage || !stageOrder.includes(stage)) return;
      const late = events.slice(i + 1).filter((l) => l.event === 'log' && stageOrder.indexOf(JSON.parse(l.data).stage) < stageOrder.indexOf(stage));
      assert.deepEqual(
        late.map((l) => l.data),
        [],
        `log lines of earlier stages after the status at ${stage}`,
      );
    });
    const end = events.at(-1)!;
    assert.equal(end.event, 'end', 'the stream ends with the build');
    assert.deepEqual(JSON.parse(end.data), { status: 'Fulfilled', build_state: 'completed' });
    for (const e of events) {
      assert.ok(e.id && /^\d+\.\d+\.\d+$/.test(e.id), `every event carries a resumable id: ${JSON.stringify(e)}`);
      assert.doesNotThrow(() => JSON.parse(e.data), 'data is one line of JSON');
    }
    const logs = events.filter((e) => e.event === 'log').map((e) => JSON.parse(e.data));
    assert.ok(logs.length >= 5, `build log lines streamed: ${logs.length}`);
    assert.ok(logs.every((l) => l.attempt === 1 && l.at && l.stage && l.message));
    assert.ok(logs.some((l) => l.stage === 'cloning') && logs.some((l) => l.stage === 'ready'), JSON.stringify(logs.map((l) => l.stage)));
    const timeline = events.filter((e) => e.event === 'timeline').map((e) => JSON.parse(e.data));
    assert.ok(
      timeline.some((t) => /approved/.test(t.event) && t.by === 'ada@acme.example'),
      JSON.stringify(timeline),
    );
    const progress = events.filter((e) => e.event === 'status').map((e) => JSON.parse(e.data).build?.progress ?? 0);
    assert.deepEqual(
      progress,
      [...progress].sort((a, b) => a - b),
      'progress only grows',
    );

    // The list tells this VM from others by name, and says how its build went.
    const row = await waitFor('the list row with the build', async () => {
      const page = await call('operator', 'GET', `/api/device_requests?org=${encodeURIComponent(ORG_A)}&status=Fulfilled&page_size=100`);
      const item = page.body.items?.find((i: { serial: string }) => i.serial === serial);
      return item?.build_status === 'completed' ? item : undefined;
    });
    assert.equal(row.name, 'streamed');
    assert.equal(typeof row.vm_id, 'number');

    // After the build: the whole history at once, the same lines, then the end.
    const replay = await openStream(`${base}/api/device_requests/${serial}/logs`, keys.operator.key).done;
    assert.deepEqual(
      replay.filter((e) => e.event === 'log').map((e) => e.data),
      logs.map((l) => JSON.stringify(l)),
    );
    assert.equal(replay.at(-1)!.event, 'end');

    // A client that reconnects with Last-Event-ID gets only what it had not seen.
    const middle = events.filter((e) => e.event === 'log')[2]!;
    const resumed = await openStream(`${base}/api/device_requests/${serial}/logs`, keys.operator.key, middle.id).done;
    const resumedLogs = resumed.filter((e) => e.event === 'log').map((e) => e.data);
    assert.deepEqual(
      resumedLogs,
      logs.slice(3).map((l) => JSON.stringify(l)),
    );

    // A client that hangs up stops the polling behind its stream.
    const waiting = await submit(ORG_A);
    let polls = 0;
    const workflow = env.client.workflow;
    const getHandle = workflow.getHandle.bind(workflow);
    workflow.getHandle = ((id: string, ...rest: unknown[]) => {
      if (id === `vm-request-${waiting}`) polls += 1;
      return (getHandle as (...a: unknown[]) => ReturnType<typeof getHandle>)(id, ...rest);
    }) as typeof workflow.getHandle;
    try {
      const abort = new AbortController();
      const res = await fetch(`${base}/api/device_requests/${waiting}/logs`, { headers: { authorization: `Bearer ${keys.operator.key}` }, signal: abort.signal });
      assert.equal(res.status, 200);
      await waitFor('a few polls', async () => (polls >= 3 ? true : undefined), 10_000, 50);
      abort.abort();
      await new Promise((r) => setTimeout(r, 300));
      const afterHangUp = polls;
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(polls, afterHangUp, 'no polling after the client left');
    } finally {
      workflow.getHandle = getHandle;
    }
  });
});

interface SseEvent {
  id?: string;
  event?: string;
  data: string;
}

/** Reads an event stream to its end, parsing the SSE framing by hand (so the test checks the bytes on the wire). */
function openStream(url: string, apiKey: string, lastEventId?: string) {
  const state = { status: 0, contentType: null as string | null, heartbeats: 0, done: undefined as unknown as Promise<SseEvent[]> };
  state.done = (async () => {
    const res = await fetch(url, {
      headers: { authorization: `Bearer ${apiKey}`, ...(lastEventId ? { 'last-event-id': lastEventId } : {}) },
      signal: AbortSignal.timeout(60_000),
    });
    state.status = res.status;
    state.contentType = res.headers.get('content-type');
    const events: SseEvent[] = [];
    let buffer = '';
    const decoder = new TextDecoder();
    for await (const chunk of res.body!) {
      buffer += decoder.decode(chunk as Uint8Array, { stream: true });
      let cut: number;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const e: SseEvent = { data: '' };
        let fields = 0;
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) {
            state.heartbeats += 1;
            continue;
          }
          const [name, ...rest] = line.split(': ');
          const value = rest.join(': ');
          if (name === 'id') e.id = value;
          else if (name === 'event') e.event = value;
          else if (name === 'data') e.data += value;
          else if (name === 'retry') continue;
          else throw new Error(`not an SSE field: ${line}`);
          fields += 1;
        }
        if (fields > 0 && e.event) events.push(e);
      }
    }
    assert.equal(buffer, '', 'the stream ends on an event boundary');
    return events;
  })();
  return state;
}

/** A JSON body, typed loosely: the tests look into it field by field. */
async function json(res: Response): Promise<any> {
  return res.json();
}

function listen(app: ReturnType<typeof createApp>): Promise<Server> {
  return new Promise((ok, fail) => {
    const s = app.listen(0, '127.0.0.1', () => ok(s));
    s.once('error', fail);
  });
}

/** The stand-in clusterSync lives outside the project tree: resolve the SDK from the project's node_modules. */
function stubBundle(dir: string): Promise<WorkflowBundle> {
  return bundleWorkflowCode({
    workflowsPath: join(dir, 'clusterSync.js'),
    logger: quietLogger,
    webpackConfigHook: (config) => ({ ...config, resolve: { ...config.resolve, modules: [...(config.resolve?.modules ?? ['node_modules']), resolve(__dirname, '..', 'node_modules')] } }),
  });
}
