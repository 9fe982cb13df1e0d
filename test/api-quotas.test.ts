import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, type Worker } from '@temporalio/worker';
import { createApp } from '../src/api/app';
import { ApiKeyStore, generateApiKey, type ApiKeyEntry } from '../src/api/auth/apiKeys';
import { apiContext } from '../src/api/http/context';
import { defaultApiTimings } from '../src/api/http/apiConfig';
import { startRequestWorkflow, toDeviceRequest } from '../src/api/intake/submission';
import { createDeviceRequestBody } from '../src/contracts/apiSchemas';
import { signWebhook } from '../src/api/intake/webhookSignature';
import { loadConfig } from '../src/config';
import type { QuotaConfig } from '../src/domain/quotas';
import { defaultRequestPolicy } from '../src/domain/requestPolicyRules';
import { simulatorTimings } from '../src/embedded/simulatorTimings';
import { startSimulatedWorld, type SimulatedWorld } from '../src/simulators/world';
import { requireTemporalBinary } from '../src/temporal/binaries';
import { searchAttributeDefinitions } from '../src/contracts/searchAttributes';
import { createActivityDeps, createWorker } from '../src/worker';
import { ResponseChecker, type OpenApiDocument } from './support/openapiResponses';
import { validRequestBody } from './support/requests';
import { waitFor } from './support/waitFor';
import { quietLogger } from './support/quietLogger';
import { defaultRequestChoiceSettings } from '../src/requestChoices';

/**
 * Quotas per org through the HTTP API, on a real Temporal dev server with a worker running the real workflows on the
 * simulated world: a submission, a class or a webhook delivery past a quota is 409 and starts nothing; approval checks
 * again; the session shows the use; a completed request frees what it held. Each test has its own org.
 */
const DAY = 24 * 3600_000;
const run = process.pid.toString(36);
const WEBHOOK_SECRET = `whsec-${generateApiKey()}`;

const quotas: QuotaConfig = {
  'Q Submit': { vms: 2 },
  'Q Class': { cores: 10 },
  'Q Approve': { vms: 1 },
  'Q Free': { vms: 1 },
  'Q Session': { vms: 3, cores: 12 },
  'Q Rebuild': { vms: 1, cores: 4 },
};

const key = <E extends ApiKeyEntry>(entry: E) => ({ ...entry, key: generateApiKey() });
const keys = {
  operator: key({ id: 'ops', role: 'operator' as const }),
  sessionAdmin: key({ id: 'sam', role: 'admin' as const, org: 'Q Session', email: 'sam@session.example' }),
};
type KeyName = keyof typeof keys;

interface Answer {
  status: number;
  headers: Headers;
  body: any;
}

describe('quotas per org', () => {
  let env: TestWorkflowEnvironment;
  let world: SimulatedWorld;
  let worldDir: string;
  let server: Server;
  let base: string;
  let worker: Worker;
  let running: Promise<void>;
  let checker: ResponseChecker;
  const taskQueue = `quotas-${run}`;

  before(async () => {
    env = await TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path: requireTemporalBinary('temporal') }, searchAttributes: searchAttributeDefinitions },
    });
    worldDir = mkdtempSync(join(tmpdir(), 'pveflow-quotas-world-'));
    world = await startSimulatedWorld({ dir: worldDir, timing: simulatorTimings.fast });
    const deps = createActivityDeps(loadConfig({ ...world.env }));
    deps.temporal.client = env.client;
    deps.settings.pollMinMs = 20;
    deps.settings.pollMaxMs = 200;
    const bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../src/workflows'), logger: quietLogger });
    worker = await createWorker({ connection: env.nativeConnection, namespace: 'default', taskQueue, deps, workflowBundle: bundle });
    running = worker.run();
    const app = createApp({ client: env.client, taskQueue, policy: defaultRequestPolicy, quotas, apiKeys: new ApiKeyStore(Object.values(keys)), webhookSecret: WEBHOOK_SECRET });
    server = await new Promise<Server>((ok, fail) => {
      const s = app.listen(0, '127.0.0.1', () => ok(s));
      s.once('error', fail);
    });
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    checker = new ResponseChecker((await (await fetch(`${base}/api/openapi.json`)).json()) as OpenApiDocument);
  });

  after(async () => {
    if (server)
      await new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      });
    worker?.shutdown();
    await running;
    await world?.stop();
    await env?.teardown();
    if (worldDir) rmSync(worldDir, { recursive: true, force: true });
  });

  const call = async (who: KeyName | undefined, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { ...(who ? { authorization: `Bearer ${keys[who].key}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    const answer = { status: res.status, headers: res.headers, body: text && res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text };
    // Every answer is one the OpenAPI document describes: the 409s and the session's quotas included.
    checker.check(method, path, answer);
    return answer;
  };

  /** A request of `org` whose period starts in a month: approving it builds nothing yet. */
  const bodyFor = (org: string, overrides: Record<string, unknown> = {}) => {
    const now = Date.now();
    return { ...validRequestBody({ client: org, period: { start: new Date(now + 30 * DAY).toISOString(), end: new Date(now + 37 * DAY).toISOString() } }), ...overrides };
  };

  const submit = async (org: string, overrides: Record<string, unknown> = {}): Promise<string> => {
    const created = await call('operator', 'POST', '/api/device_requests', bodyFor(org, overrides));
    assert.equal(created.status, 201, JSON.stringify(created.body));
    return created.body.serial;
  };

  /** What visibility lists for the org (all requests, open or not). */
  const listed = async (org: string) => (await call('operator', 'GET', `/api/device_requests?org=${encodeURIComponent(org)}`)).body.items as Array<{ serial: string; status: string }>;

  const waitListed = (org: string, n: number) => waitFor(`${n} requests of ${org} visible`, async () => ((await listed(org)).length >= n ? true : undefined));

  /** Counts workflow starts through the app's client while `fn` runs: visibility alone could lag behind a start. */
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

  const statusOf = async (serial: string) => (await call('operator', 'GET', `/api/device_requests/${serial}`)).body.status as string;

  test('a submission past a quota is 409 naming the quota, its use and the limit, and starts nothing', async () => {
    const org = 'Q Submit';
    const firstBody = bodyFor(org);
    const first = await call('operator', 'POST', '/api/device_requests', firstBody, { 'idempotency-key': `quota-${run}-first` });
    assert.equal(first.status, 201, JSON.stringify(first.body));
    await submit(org);
    await waitListed(org, 2);
    let refused!: Answer;
    assert.equal(await countingStarts(async () => void (refused = await call('operator', 'POST', '/api/device_requests', bodyFor(org)))), 0, 'nothing started');
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    assert.equal(refused.body.error, 'quota exceeded');
    assert.deepEqual(refused.body.quota, { org, quota: 'vms', use: 2, asked: 1, limit: 2 });
    assert.match(refused.body.detail, /quota vms of Q Submit exceeded.*hold 2 VMs.*limit is 2/);

    // The webhook intake counts the same way: a new delivery past the quota starts nothing either.
    const raw = JSON.stringify(bodyFor(org));
    const deliveryId = `quota-${run}-1`;
    let hook!: Answer;
    const hookStarts = await countingStarts(async () => {
      hook = await call(undefined, 'POST', '/api/hooks/device_requests', raw, {
        'content-type': 'application/json',
        'x-pveflow-delivery': deliveryId,
        'x-pveflow-signature': signWebhook(WEBHOOK_SECRET, deliveryId, raw),
      });
    });
    assert.equal(hookStarts, 0, 'the delivery started nothing');
    assert.equal(hook.status, 409, JSON.stringify(hook.body));
    assert.equal(hook.body.quota.quota, 'vms');

    // An Idempotency-Key changes nothing for a new submission: refused, and nothing started under its serial.
    const keyed = await call('operator', 'POST', '/api/device_requests', bodyFor(org), { 'idempotency-key': `quota-${run}-keyed` });
    assert.equal(keyed.status, 409, JSON.stringify(keyed.body));
    assert.equal((await listed(org)).length, 2, 'nothing was started past the quota');

    // A retry of a submission the quota took still finds its request, full as the org now is.
    const retry = await call('operator', 'POST', '/api/device_requests', firstBody, { 'idempotency-key': `quota-${run}-first` });
    assert.equal(retry.status, 200, JSON.stringify(retry.body));
    assert.equal(retry.body.serial, first.body.serial);
    assert.equal(retry.headers.get('idempotent-replayed'), 'true');

    // Another org is not counted against this one.
    await submit('Q Class', { cores: 2 });
  });

  test('a class that would pass a quota is 409 as a whole and starts no member; one that fits is taken', async () => {
    const org = 'Q Class';
    await waitListed(org, 1); // the 2-core request of the previous test
    let tooBig!: Answer;
    assert.equal(await countingStarts(async () => void (tooBig = await call('operator', 'POST', '/api/classes', { ...bodyFor(org, { name: 'lab' }), cores: 4, count: 3 }))), 0, 'no member started');
    assert.equal(tooBig.status, 409, JSON.stringify(tooBig.body));
    assert.deepEqual(tooBig.body.quota, { org, quota: 'cores', use: 2, asked: 12, limit: 10 });
    assert.equal((await listed(org)).length, 1, 'no member of the refused class was started');

    const fits = await call('operator', 'POST', '/api/classes', { ...bodyFor(org, { name: 'lab' }), cores: 4, count: 2 });
    assert.equal(fits.status, 201, JSON.stringify(fits.body));
    assert.equal(fits.body.requests.length, 2);
  });

  test('approval checks again: 409 when the org filled up meanwhile, taken once room is made', async () => {
    const org = 'Q Approve';
    const first = await submit(org);
    await waitListed(org, 1);
    // A submission that raced past the count (another API replica counting at the same moment): started around it.
    const ctx = apiContext({ client: env.client, taskQueue, policy: defaultRequestPolicy, quotas: {}, timings: defaultApiTimings, choices: defaultRequestChoiceSettings });
    const raced = toDeviceRequest('VM-QZZZ2', createDeviceRequestBody.parse(bodyFor(org)));
    assert.ok('request' in raced);
    await startRequestWorkflow(ctx, raced.request);
    await waitListed(org, 2);

    const refused = await call('operator', 'POST', `/api/device_requests/${first}/approve`, {});
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    assert.deepEqual(refused.body.quota, { org, quota: 'vms', use: 1, asked: 1, limit: 1 });
    assert.equal(await statusOf(first), 'Pending', 'the refused approval changed nothing');

    const rejected = await call('operator', 'POST', `/api/device_requests/VM-QZZZ2/reject`, { reason: 'over the quota' });
    assert.equal(rejected.status, 200, JSON.stringify(rejected.body));
    const approved = await waitFor('the approval to be taken once the other request is rejected', async () => {
      const r = await call('operator', 'POST', `/api/device_requests/${first}/approve`, {});
      return r.status === 409 ? undefined : r;
    });
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    assert.equal(approved.body.status, 'Approved');
  });

  test("the session shows the org's limits and use; completing a request frees its quota", async () => {
    const session = 'Q Session';
    await submit(session, { cores: 4, memory_mib: 4096 });
    const seen = await waitFor('the use to show on the session', async () => {
      const r = await call('sessionAdmin', 'GET', '/api/session');
      return r.body.quotas?.[0]?.use.vms === 1 ? r : undefined;
    });
    assert.deepEqual(seen.body.quotas, [{ org: session, limits: { vms: 3, cores: 12 }, use: { vms: 1, cores: 4, memory_mib: 4096, disk_gib: 0 } }]);
    const operator = await call('operator', 'GET', '/api/session');
    assert.deepEqual(operator.body.quotas.map((q: { org: string }) => q.org).sort(), Object.keys(quotas).sort(), 'an operator sees every org the configuration names');

    const org = 'Q Free';
    const held = await submit(org);
    assert.equal((await call('operator', 'POST', `/api/device_requests/${held}/approve`, {})).status, 200);
    await waitFor('the approval to show in visibility', async () => ((await listed(org)).find((r) => r.serial === held)?.status === 'Approved' ? true : undefined));
    const full = await call('operator', 'POST', '/api/device_requests', bodyFor(org));
    assert.equal(full.status, 409, JSON.stringify(full.body));

    const completed = await call('operator', 'POST', `/api/device_requests/${held}/complete`, {});
    assert.equal(completed.status, 200, JSON.stringify(completed.body));
    await waitFor(`${held} to complete`, async () => ((await statusOf(held)) === 'Completed' ? true : undefined));
    const taken = await waitFor('a submission to be taken once the completed request freed its quota', async () => {
      const r = await call('operator', 'POST', '/api/device_requests', bodyFor(org));
      return r.status === 409 ? undefined : r;
    });
    assert.equal(taken.status, 201, JSON.stringify(taken.body));
  });

  test('a rebuild of a cancelled request checks the quota as approval does, and waits for its period to start', async () => {
    // Issue 27, finding 3: cancel C, file D up to the quota, rebuild C: C was built at once, past the quota and a
    // month before its period.
    const org = 'Q Rebuild';
    const cancelled = await submit(org, { cores: 2 });
    assert.equal((await call('operator', 'POST', `/api/device_requests/${cancelled}/approve`, {})).status, 200);
    const cancel = await call('operator', 'POST', `/api/device_requests/${cancelled}/cancel`, {});
    assert.equal(cancel.status, 200, JSON.stringify(cancel.body));
    assert.equal(cancel.body.status, 'Cancelled');
    await waitFor('the cancel to show in visibility', async () => ((await listed(org)).find((r) => r.serial === cancelled)?.status === 'Cancelled' ? true : undefined));
    const other = await submit(org, { cores: 2 });
    await waitFor('the other request to show in visibility', async () => ((await listed(org)).some((r) => r.serial === other) ? true : undefined));

    const refused = await call('operator', 'POST', `/api/device_requests/${cancelled}/rebuild`, {});
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    assert.equal(refused.body.error, 'quota exceeded');
    assert.deepEqual(refused.body.quota, { org, quota: 'vms', use: 1, asked: 1, limit: 1 });
    assert.equal(await statusOf(cancelled), 'Cancelled', 'the refused rebuild changed nothing');

    // Room made: the rebuild is taken, and the build waits for the period's start, a month ahead.
    assert.equal((await call('operator', 'POST', `/api/device_requests/${other}/reject`, { reason: 'room for the rebuild' })).status, 200);
    const rebuilt = await waitFor('the rebuild to be taken once the other request is rejected', async () => {
      const r = await call('operator', 'POST', `/api/device_requests/${cancelled}/rebuild`, {});
      return r.status === 409 && r.body.error === 'quota exceeded' ? undefined : r;
    });
    assert.equal(rebuilt.status, 200, JSON.stringify(rebuilt.body));
    assert.equal(rebuilt.body.status, 'Approved');
    assert.ok(Date.parse(rebuilt.body.builds_at) > Date.now() + 29 * DAY, `the rebuild answers when it builds: ${JSON.stringify(rebuilt.body)}`);
    const record = (await call('operator', 'GET', `/api/device_requests/${cancelled}`)).body;
    assert.equal(record.status, 'Approved', 'nothing is built before the period starts');
    assert.equal(record.build?.attempt ?? 0, 0);
  });
});
