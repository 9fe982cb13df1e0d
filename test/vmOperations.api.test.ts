import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, type Worker } from '@temporalio/worker';
import { createApp } from '../src/api/app';
import { ApiKeyStore, generateApiKey, type ApiKeyEntry } from '../src/api/auth/apiKeys';
import { PveClient } from '../src/clients/pve';
import { loadConfig } from '../src/config';
import { defaultRequestPolicy } from '../src/domain/requestPolicyRules';
import { simulatorTimings } from '../src/embedded/simulatorTimings';
import { startSimulatedWorld, type SimulatedWorld } from '../src/simulators/world';
import { requireTemporalBinary } from '../src/temporal/binaries';
import { searchAttributeDefinitions } from '../src/contracts/searchAttributes';
import { closeActivityDeps, createActivityDeps, createWorker } from '../src/worker';
import { ResponseChecker, type OpenApiDocument } from './support/openapiResponses';
import { validRequestBody } from './support/requests';
import { quietLogger } from './support/quietLogger';
import { apiRequestDriver, type ApiActor } from './support/apiRequestDriver';
import { waitFor } from './support/waitFor';

/**
 * The day-2 operations through the HTTP API, on a real Temporal dev server with the real workflows and activities
 * against the simulated cluster: what each role may do, 400 naming the field, 409 with the workflow's reason, the
 * same Idempotency-Key done once. Every answer is checked against the OpenAPI document.
 */
const ORG_A = 'Acme Corp';
const key = <E extends ApiKeyEntry>(entry: E) => ({ ...entry, key: generateApiKey() });
const keys = {
  requester: key({ id: 'rita', role: 'requester' as const, org: ORG_A, email: 'rita@acme.example' }),
  admin: key({ id: 'ada', role: 'admin' as const, org: ORG_A, email: 'ada@acme.example' }),
  other: key({ id: 'gus', role: 'requester' as const, org: 'Globex', email: 'gus@globex.example' }),
  operator: key({ id: 'ops', role: 'operator' as const }),
  quotaOrg: key({ id: 'quinn', role: 'requester' as const, org: 'Quota Org', email: 'quinn@quota.example' }),
  quotaAdmin: key({ id: 'qadmin', role: 'admin' as const, org: 'Quota Org', email: 'qadmin@quota.example' }),
  revertOrg: key({ id: 'rory', role: 'requester' as const, org: 'Revert Org', email: 'rory@revert.example' }),
  revertAdmin: key({ id: 'radmin', role: 'admin' as const, org: 'Revert Org', email: 'radmin@revert.example' }),
};
type KeyName = keyof typeof keys;

describe('day-2 operations through the HTTP API', () => {
  let env: TestWorkflowEnvironment;
  let world: SimulatedWorld;
  let dir: string;
  let server: Server;
  let base: string;
  let checker: ResponseChecker;
  let worker: Worker;
  let running: Promise<void>;
  let deps: ReturnType<typeof createActivityDeps>;
  let root: PveClient;
  const taskQueue = `day2-api-${process.pid}`;

  before(async () => {
    env = await TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path: requireTemporalBinary('temporal') }, searchAttributes: searchAttributeDefinitions },
    });
    dir = mkdtempSync(join(tmpdir(), 'pveflow-day2-api-'));
    world = await startSimulatedWorld({ dir, timing: { ...simulatorTimings.fast, snapshotMs: 20, migrateMs: 40 } });
    root = new PveClient({ endpoint: world.env.PVE_ENDPOINT, tokenId: world.rootToken.id, tokenSecret: world.rootToken.secret, ca: readFileSync(world.env.PVE_CA_FILE), timeoutMs: 10_000 });
    deps = createActivityDeps(loadConfig({ ...world.env, CREDENTIAL_KEYS_DIR: join(dir, 'keys') }));
    deps.temporal.client = env.client;
    deps.settings.pollMinMs = 20;
    deps.settings.pollMaxMs = 200;
    const bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../src/workflows'), logger: quietLogger });
    worker = await createWorker({ connection: env.nativeConnection, namespace: 'default', taskQueue, deps, workflowBundle: bundle });
    running = worker.run();
    const app = createApp({
      client: env.client,
      taskQueue,
      policy: { ...defaultRequestPolicy, snapshotLimit: 1, shutdownTimeoutSeconds: 10 },
      quotas: { 'Quota Org': { cores: 5 }, 'Revert Org': { cores: 6 } },
      apiKeys: new ApiKeyStore(Object.values(keys)),
      webhookSecret: `whsec-${generateApiKey()}`,
      timings: { logPollMs: 100, sseHeartbeatMs: 150 },
    });
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
    if (deps) await closeActivityDeps(deps);
    await root?.close();
    await world?.stop();
    await env?.teardown();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const call = async (who: KeyName, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${keys[who].key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(60_000),
    });
    const text = await res.text();
    const answer = { status: res.status, headers: res.headers, body: text && res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text };
    checker.check(method, path, answer);
    return answer;
  };

  /** A request of ORG_A (or of the quota's org) whose period has begun, approved and built, driven over the API. */
  async function fulfilled(
    who: { requester: KeyName; admin: KeyName; client: string; requesterEmail: string } = { requester: 'requester', admin: 'admin', client: ORG_A, requesterEmail: 'rita@acme.example' },
  ): Promise<{ serial: string; vmid: number; node: string }> {
    const as: Record<ApiActor, KeyName> = { submitter: who.requester, approver: who.admin, reader: who.requester };
    const driver = apiRequestDriver((method, path, actor, body) => call(as[actor], method, path, body));
    const now = Date.now();
    const request = await driver.startApproved(
      validRequestBody({ client: who.client, requester: who.requesterEmail, period: { start: new Date(now - 60_000).toISOString(), end: new Date(now + 7 * 24 * 3600_000).toISOString() }, cores: 2, memory_mib: 2048 }),
    );
    const record = await request.waitForStatus('Fulfilled', { timeoutMs: 120_000 });
    return { serial: request.serial, vmid: record.device.vmid, node: record.device.node };
  }

  test('power and reconfigure: bad input is a 400 naming the field, a reboot unconfirmed a 409, the same Idempotency-Key one shutdown', async () => {
    const { serial, vmid, node } = await fulfilled();
    const at = (what: string) => `/api/device_requests/${serial}/${what}`;

    const bad = await call('requester', 'POST', at('power'), { action: 'hibernate' });
    assert.equal(bad.status, 400);
    assert.deepEqual(
      bad.body.issues.map((i: { field: string }) => i.field),
      ['action'],
    );
    assert.deepEqual(
      (await call('requester', 'POST', at('reconfigure'), { note: 'nothing' })).body.issues.map((i: { field: string }) => i.field),
      ['cores'],
    );
    assert.deepEqual(
      (await call('requester', 'POST', at('reconfigure'), { memory_mib: 100 })).body.issues.map((i: { field: string }) => i.field),
      ['memory_mib'],
    );
    const huge = await call('requester', 'POST', at('reconfigure'), { disk_gib: 5000 });
    assert.equal(huge.status, 400);
    assert.deepEqual(huge.body.issues, [{ field: 'disk_gib', reason: 'at most 1024 GiB (REQUEST_MAX_DISK_GIB)', rule: 'choice-limit' }]);
    assert.equal((await call('other', 'POST', at('power'), { action: 'stop' })).status, 404, 'another org’s request does not exist for its keys');

    const idem = { 'idempotency-key': 'shutdown-for-the-weekend' };
    const first = await call('requester', 'POST', at('power'), { action: 'shutdown', note: 'weekend' }, idem);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.operation.state, 'succeeded');
    assert.equal(first.body.operation.by, 'rita@acme.example');
    assert.equal(first.body.power, 'stopped');
    const again = await call('requester', 'POST', at('power'), { action: 'shutdown', note: 'weekend' }, idem);
    assert.equal(again.status, 200);
    assert.deepEqual(again.body.operation, first.body.operation, 'the same operation, answered again');
    const reused = await call('requester', 'POST', at('power'), { action: 'start' }, idem);
    assert.equal(reused.status, 409);
    assert.match(reused.body.detail, /was already used for power shutdown/);

    // Stopped: every change applies at once. Running with Proxmox's default hotplug: cores need a reboot.
    const stoppedChange = await call('admin', 'POST', at('reconfigure'), { cores: 3 });
    assert.equal(stoppedChange.body.operation.outcome, 'live: cores 2 → 3');
    assert.equal((await call('requester', 'POST', at('power'), { action: 'start' })).body.power, 'running');
    const unconfirmed = await call('requester', 'POST', at('reconfigure'), { cores: 4, disk_gib: 12 });
    assert.equal(unconfirmed.status, 409);
    assert.match(
      unconfirmed.body.detail,
      /^a reboot is needed to apply cores 3 → 4 \(CPU hot-plug is off in the VM's hotplug option\); nothing was changed\. Send confirm_reboot: true to apply it with a reboot \(disk 4 → 12 GiB would apply live\)$/,
    );
    assert.equal((await root.vmConfig(node, vmid)).raw.cores, 3);
    const confirmed = await call('requester', 'POST', at('reconfigure'), { cores: 4, disk_gib: 12, confirm_reboot: true });
    assert.equal(confirmed.status, 200, JSON.stringify(confirmed.body));
    assert.equal(confirmed.body.operation.outcome, 'live: disk 4 → 12 GiB; after a reboot: cores 3 → 4 (rebooted)');
    const shrink = await call('requester', 'POST', at('reconfigure'), { disk_gib: 5 });
    assert.equal(shrink.status, 409);
    assert.match(shrink.body.detail, /diskGiB: the disk is 12 GiB and Proxmox only grows disks/);

    const record = (await call('requester', 'GET', `/api/device_requests/${serial}`)).body;
    assert.equal(record.timeline.filter((e: { event: string }) => e.event === 'power shutdown asked: weekend').length, 1);
    assert.deepEqual(
      record.operations.map((o: { what: string; state: string }) => `${o.what}: ${o.state}`),
      [
        'power shutdown: succeeded',
        'reconfigure cores 3: succeeded',
        'power start: succeeded',
        'reconfigure cores 4, disk 12 GiB: refused',
        'reconfigure cores 4, disk 12 GiB (reboot confirmed): succeeded',
        'reconfigure disk 5 GiB: refused',
      ],
    );
  });

  test('a reboot that outlives the wait for it is a 202 naming its own path, where its outcome appears when it has ended', async () => {
    const { serial } = await fulfilled();
    // A second API on the same Temporal and cluster that waits 200 ms for an operation (API_OPERATION_WAIT_MS), and a
    // reboot that takes the cluster 3 s: the answer cannot be the operation's end.
    const impatient = createApp({
      client: env.client,
      taskQueue,
      policy: { ...defaultRequestPolicy, snapshotLimit: 1, shutdownTimeoutSeconds: 10 },
      quotas: {},
      apiKeys: new ApiKeyStore(Object.values(keys)),
      timings: { operationWaitMs: 200 },
    });
    const impatientServer = await new Promise<Server>((ok, fail) => {
      const s = impatient.listen(0, '127.0.0.1', () => ok(s));
      s.once('error', fail);
    });
    world.pve.faults.set({ latency: { ms: 3000, route: 'POST /nodes/{node}/qemu/{vmid}/status/reboot' } });
    try {
      const path = `/api/device_requests/${serial}/power`;
      const res = await fetch(`http://127.0.0.1:${(impatientServer.address() as AddressInfo).port}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${keys.requester.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ action: 'reboot', note: 'slow guest' }),
        signal: AbortSignal.timeout(60_000),
      });
      const accepted = { status: res.status, headers: res.headers, body: (await res.json()) as any };
      checker.check('POST', path, accepted);
      assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
      assert.equal(accepted.body.outcome, `/api/device_requests/${serial}/operations/${accepted.body.operation_id}`);
      assert.equal(res.headers.get('location'), accepted.body.outcome);
      assert.match(accepted.body.detail, /still running: GET \/api\/device_requests\/VM-\w+\/operations\/r-[\w-]+ shows its outcome/);

      const ended = await waitFor(
        'the reboot to end at the path the 202 named',
        async () => {
          const r = await call('requester', 'GET', accepted.body.outcome);
          assert.equal(r.status, 200, JSON.stringify(r.body));
          return r.body.operation.state === 'running' ? undefined : r.body;
        },
        60_000,
        100,
      );
      assert.equal(ended.operation.id, accepted.body.operation_id);
      assert.equal(ended.operation.what, 'power reboot');
      assert.equal(ended.operation.state, 'succeeded', JSON.stringify(ended));
      assert.equal(ended.operation.note, 'slow guest');
      assert.equal(ended.power, 'running');
      const record = (await call('requester', 'GET', `/api/device_requests/${serial}`)).body;
      assert.deepEqual(
        record.operations.filter((o: { id: string }) => o.id === accepted.body.operation_id).map((o: { state: string }) => o.state),
        ['succeeded'],
      );
    } finally {
      world.pve.faults.clear('latency');
      await new Promise<void>((ok) => {
        impatientServer.close(() => ok());
        impatientServer.closeAllConnections();
      });
    }
    const unknown = await call('requester', 'GET', `/api/device_requests/${serial}/operations/r-00000000-0000-4000-8000-000000000000`);
    assert.equal(unknown.status, 404);
    assert.match(unknown.body.detail, /has no operation r-00000000/);
    assert.equal((await call('other', 'GET', `/api/device_requests/${serial}/operations/r-00000000-0000-4000-8000-000000000000`)).status, 404);
    assert.equal((await call('requester', 'GET', `/api/device_requests/${serial}/operations/not-an-id`)).status, 400);
  });

  test('snapshots and migration: the limit, revert and delete by name, migration for operators only', async () => {
    const { serial, node } = await fulfilled();
    const at = (what: string) => `/api/device_requests/${serial}/${what}`;
    assert.equal((await call('requester', 'POST', at('snapshots'), { name: '9lives' })).body.issues[0].field, 'name');
    // Judged as Proxmox judges it (pve-configid: two characters at least), before anything starts.
    const tooShort = await call('requester', 'POST', at('snapshots'), { name: 'a' });
    assert.equal(tooShort.status, 400, JSON.stringify(tooShort.body));
    assert.equal(tooShort.body.issues[0].field, 'name');
    const taken = await call('requester', 'POST', at('snapshots'), { name: 'clean', with_ram: true, description: 'as built' });
    assert.equal(taken.status, 200, JSON.stringify(taken.body));
    assert.deepEqual(
      taken.body.snapshots.map((s: { name: string; with_ram: boolean }) => [s.name, s.with_ram]),
      [['clean', true]],
    );
    const over = await call('requester', 'POST', at('snapshots'), { name: 'second' });
    assert.equal(over.status, 409);
    assert.match(over.body.detail, /has 1 snapshots, its limit \(REQUEST_SNAPSHOT_LIMIT\) is 1: delete one first/);
    const listed = await call('requester', 'GET', at('snapshots'));
    assert.deepEqual([listed.body.limit, listed.body.snapshots.map((s: { name: string }) => s.name)], [1, ['clean']]);
    assert.equal((await call('requester', 'POST', at('snapshots/clean/revert'), {})).body.operation.outcome, 'reverted; the VM is running');
    assert.equal((await call('requester', 'DELETE', at('snapshots/clean'))).body.operation.outcome, 'deleted');
    const gone = await call('requester', 'DELETE', at('snapshots/clean'));
    assert.equal(gone.status, 409);
    assert.match(gone.body.detail, /has no snapshot clean \(it has none\)/);

    // Proxmox fails the snapshot task: the operation fails (502, saying what Proxmox said), recorded as failed.
    world.pve.faults.set({ taskFailure: { type: 'qmsnapshot', error: 'snapshot feature is not available' } });
    const failed = await call('requester', 'POST', at('snapshots'), { name: 'doomed' });
    assert.equal(failed.status, 502, JSON.stringify(failed.body));
    assert.match(
      failed.body.detail,
      new RegExp(`^snapshot create doomed on request ${serial} failed: taking snapshot doomed for request ${serial}, VM \\d+, node \\w+ failed in Proxmox task UPID:[^ ]+: snapshot feature is not available$`),
    );
    assert.equal(failed.body.operation.state, 'failed');
    assert.deepEqual(failed.body.snapshots, [], 'a snapshot that failed is not the request’s');
    const afterFailure = await call('requester', 'GET', `/api/device_requests/${serial}`);
    assert.ok(afterFailure.body.timeline.some((e: { event: string }) => /^snapshot create doomed failed: /.test(e.event)));

    const target = ['pve1', 'pve2', 'pve3'].find((n) => n !== node)!;
    const forbidden = await call('admin', 'POST', at('migrate'), { target });
    assert.equal(forbidden.status, 403);
    assert.match(forbidden.body.detail, /migrate needs the role operator/);
    assert.equal((await call('operator', 'POST', at('migrate'), { target: node })).status, 409);
    const moved = await call('operator', 'POST', at('migrate'), { target, note: 'maintenance' });
    assert.equal(moved.status, 200, JSON.stringify(moved.body));
    assert.equal(moved.body.node, target);
    assert.equal((await call('requester', 'GET', `/api/device_requests/${serial}`)).body.device.node, target);
  });

  test('a request whose VM is not built refuses every operation with 409 and the reason', async () => {
    const now = Date.now();
    const created = await call(
      'requester',
      'POST',
      '/api/device_requests',
      validRequestBody({ period: { start: new Date(now + 30 * 24 * 3600_000).toISOString(), end: new Date(now + 31 * 24 * 3600_000).toISOString() } }),
    );
    const serial = created.body.serial;
    const r = await call('requester', 'POST', `/api/device_requests/${serial}/power`, { action: 'start' });
    assert.equal(r.status, 409);
    assert.match(r.body.detail, new RegExp(`^cannot power request ${serial}: it is Pending — it waits for an approval; power only when Fulfilled \\(power start\\)$`));
    assert.equal((await call('admin', 'POST', `/api/device_requests/${serial}/approve`, {})).status, 200);
    const approved = await call('requester', 'POST', `/api/device_requests/${serial}/snapshots`, { name: 'early' });
    assert.equal(approved.status, 409);
    assert.match(approved.body.detail, /^cannot snapshot request VM-[0-9A-Z]{5}: it is Approved — its build has not started yet; snapshot only when Fulfilled \(snapshot create early\)$/);
  });

  test("a VM that grows holds more of its org's quota: a resize past it is a 409 naming it, and what it holds counts for the next submission", async () => {
    const { serial } = await fulfilled({ requester: 'quotaOrg', admin: 'quotaAdmin', client: 'Quota Org', requesterEmail: 'quinn@quota.example' });
    const over = await call('quotaOrg', 'POST', `/api/device_requests/${serial}/reconfigure`, { cores: 6, confirm_reboot: true });
    assert.equal(over.status, 409, JSON.stringify(over.body));
    assert.equal(over.body.error, 'quota exceeded');
    assert.deepEqual(over.body.quota, { org: 'Quota Org', quota: 'cores', use: 0, asked: 6, limit: 5 });
    const grown = await call('quotaOrg', 'POST', `/api/device_requests/${serial}/reconfigure`, { cores: 4, confirm_reboot: true });
    assert.equal(grown.status, 200, JSON.stringify(grown.body));
    // The org now holds 4 cores: a second request of 2 would make 6.
    const now = Date.now();
    const second = await call(
      'quotaOrg',
      'POST',
      '/api/device_requests',
      validRequestBody({ client: 'Quota Org', requester: 'quinn@quota.example', period: { start: new Date(now + 86_400_000).toISOString(), end: new Date(now + 2 * 86_400_000).toISOString() }, cores: 2 }),
    );
    assert.equal(second.status, 409, JSON.stringify(second.body));
    assert.deepEqual(second.body.quota, { org: 'Quota Org', quota: 'cores', use: 4, asked: 2, limit: 5 });
  });

  test('a snapshot revert brings back the size the snapshot has: counted against the quota first (409), then the record and the quota follow it', async () => {
    // Issue 27, finding 2: grow 2 → 4 cores, snapshot, shrink to 2, file another request up to the quota, revert: the
    // VM had 4 cores again while the record and the quota said 2.
    const org = 'Revert Org';
    const { serial, vmid, node } = await fulfilled({ requester: 'revertOrg', admin: 'revertAdmin', client: org, requesterEmail: 'rory@revert.example' });
    const at = (what: string) => `/api/device_requests/${serial}/${what}`;
    assert.equal((await call('revertAdmin', 'POST', at('reconfigure'), { cores: 4, confirm_reboot: true })).status, 200);
    assert.equal((await call('revertOrg', 'POST', at('snapshots'), { name: 'big' })).status, 200);
    assert.equal((await call('revertAdmin', 'POST', at('reconfigure'), { cores: 2, confirm_reboot: true })).status, 200);
    const now = Date.now();
    const other = await call(
      'revertOrg',
      'POST',
      '/api/device_requests',
      validRequestBody({ client: org, requester: 'rory@revert.example', period: { start: new Date(now + 86_400_000).toISOString(), end: new Date(now + 2 * 86_400_000).toISOString() }, cores: 3 }),
    );
    assert.equal(other.status, 201, JSON.stringify(other.body));

    const refused = await call('revertOrg', 'POST', at('snapshots/big/revert'), {});
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    assert.equal(refused.body.error, 'quota exceeded');
    assert.deepEqual(refused.body.quota, { org, quota: 'cores', use: 3, asked: 4, limit: 6 });
    assert.equal(Number(world.pve.dump().vms.find((v) => v.vmid === vmid)?.config.cores), 2, 'nothing was reverted');

    assert.equal((await call('revertAdmin', 'POST', `/api/device_requests/${other.body.serial}/reject`, { reason: 'room for the revert' })).status, 200);
    const reverted = await waitFor('the revert to be taken once the other request is rejected', async () => {
      const r = await call('revertOrg', 'POST', at('snapshots/big/revert'), {});
      return r.status === 409 && r.body.error === 'quota exceeded' ? undefined : r;
    });
    assert.equal(reverted.status, 200, JSON.stringify(reverted.body));
    assert.match(reverted.body.operation.outcome, /^reverted; the VM is running; the request now states its size: cores 2 → 4$/);
    assert.equal(Number(world.pve.dump().vms.find((v) => v.vmid === vmid && v.node === node)?.config.cores), 4);
    // What the org holds follows: 4 cores, so a request of 3 no longer fits.
    const third = await call(
      'revertOrg',
      'POST',
      '/api/device_requests',
      validRequestBody({ client: org, requester: 'rory@revert.example', period: { start: new Date(now + 86_400_000).toISOString(), end: new Date(now + 2 * 86_400_000).toISOString() }, cores: 3 }),
    );
    assert.equal(third.status, 409, JSON.stringify(third.body));
    assert.deepEqual(third.body.quota, { org, quota: 'cores', use: 4, asked: 3, limit: 6 });
  });
});
