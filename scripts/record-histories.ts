import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { PveClient, waitForTask } from '../src/clients/pve';
import { loadConfig } from '../src/config';
import { simulatorTimings } from '../src/embedded/simulatorTimings';
import { requireTemporalBinary } from '../src/temporal/binaries';
import { closeActivityDeps, createActivityDeps, createWorker } from '../src/worker';
import { searchAttributeDefinitions } from '../src/contracts/searchAttributes';
import { clusterSync, vmRequest } from '../src/workflows';
import { approveUpdate, cancelUpdate, completeUpdate, extendUpdate, rebuildUpdate, statusQuery } from '../src/contracts/messages';
import type { RequestRecord, RequestStatus } from '../src/contracts/types';
import { defaultRequestPolicy } from '../src/domain/requestPolicyRules';
import { historyToJson } from '../test/histories/historyJson';
import { DAY, startWorkflowHarness, type WorkflowHarness } from '../test/support/workflowHarness';
import { waitFor } from '../test/support/waitFor';
import { apiKeyRegistryWorkflowId, cloneSlotsWorkflowId, ipPoolWorkflowId } from '../src/contracts/workflowIds';
import { issueKeyUpdate, issuedKeysQuery, keysUsedSignal, revokeKeyUpdate } from '../src/contracts/apiKeyRegistryMessages';

/**
 * Records the histories `test/replay.test.ts` replays: one per path through every workflow type, made by the real
 * workflows and activities against the simulated world on the time-skipping test server. Re-record (and review the
 * diff) only when a workflow change is meant to be incompatible and old executions are known to be gone:
 * `npx tsx scripts/record-histories.ts`.
 */
/** HISTORIES_OUT writes elsewhere, e.g. to see what a re-recording would change before replacing the files. */
const OUT = resolve(process.env.HISTORIES_OUT ?? resolve(__dirname, '../test/histories'));
/**
 * HISTORIES_ADD=1 records only the histories of the workflow types and paths added since the first recording
 * (clone slots, address pool, a build with a static address, a slot handover) that are not on file
 * yet, and keeps the older files: those are the proof that executions started by older workflow code still replay.
 */
const ADD_ONLY = process.env.HISTORIES_ADD === '1';

async function main(): Promise<void> {
  const started = await startWorkflowHarness();
  if ('skipped' in started) throw new Error(`cannot record histories: ${started.skipped}`);
  const h = started;
  mkdirSync(OUT, { recursive: true });
  if (!ADD_ONLY) for (const f of readdirSync(OUT)) if (f.endsWith('.json')) rmSync(join(OUT, f));
  try {
    // First: its lease runs out in skipped time, and the time-skipping server skips only while nothing else runs —
    // after the other scenarios, their long-lived workflows (clone slots, address pool) keep it from skipping.
    if (!ADD_ONLY) await extendedLease(h);
    // Each later addition is recorded once and then kept, like the first recording.
    const added: Array<{ files: string[]; record: (h: WorkflowHarness) => Promise<void> }> = [
      { files: ['cloneSlots-two-builds', 'ipPool-leased-and-released', 'vmBuild-static-address'], record: slotsAndAddresses },
      { files: ['apiKeyRegistry-issued-used-revoked'], record: keyRegistry },
    ];
    for (const { files, record } of added) {
      if (!ADD_ONLY || files.some((f) => !existsSync(join(OUT, `${f}.json`)))) await record(h);
    }
    if (ADD_ONLY) return;
    await happyPath(h);
    await failedThenRebuilt(h);
    await cancelledBuild(h);
    await syncRun(h);
  } finally {
    await h.stop();
  }
  console.log(`histories written to ${OUT}:\n  ${readdirSync(OUT).join('\n  ')}`);
}

/** approve → fulfilled → complete: vmRequest with its vmBuild and vmCompletion children. */
async function happyPath(h: WorkflowHarness): Promise<void> {
  const serial = 'VM-RP001';
  await wholeLifecycle(h, serial);
  await save(h, `vm-request-${serial}`, 'vmRequest-happy-path');
  await save(h, `vm-build-${serial}-1`, 'vmBuild-completed');
  await save(h, `vm-completion-${serial}`, 'vmCompletion-completed');
}

/** The only allowed node is offline: build 1 fails; the node comes back, a rebuild succeeds, then completion. */
async function failedThenRebuilt(h: WorkflowHarness): Promise<void> {
  const serial = 'VM-RP002';
  const world = await h.world({}, { PVE_NODE_SELECTOR: 'pve2' });
  world.pve.faults.set({ nodeOffline: { node: 'pve2' } });
  await h.withWorker(world, `rec-${serial}`, async () => {
    const handle = await startRequest(h, serial, `rec-${serial}`);
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'admin' }] });
    await until(handle, 'Failed');
    world.pve.faults.clear();
    await handle.executeUpdate(rebuildUpdate, { args: [{ by: 'admin' }] });
    await until(handle, 'Fulfilled');
    await handle.executeUpdate(completeUpdate, { args: [{ by: 'rita' }] });
    await expectResult(handle, 'Completed');
  });
  await save(h, `vm-request-${serial}`, 'vmRequest-failed-then-rebuilt');
  await save(h, `vm-build-${serial}-1`, 'vmBuild-failed');
}

/** A cancel while the (slow) clone runs: the build's undos run, the request ends cancelled after completion. */
async function cancelledBuild(h: WorkflowHarness): Promise<void> {
  const serial = 'VM-RP003';
  const world = await h.world({ linkedCloneMs: 4_000 });
  await h.withWorker(world, `rec-${serial}`, async () => {
    const handle = await startRequest(h, serial, `rec-${serial}`);
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'admin' }] });
    await until(handle, 'Imaging');
    await handle.executeUpdate(cancelUpdate, { args: [{ by: 'rita', note: 'wrong template' }] });
    await until(handle, 'Cancelled');
    await handle.executeUpdate(completeUpdate, { args: [{ by: 'rita' }] });
    await expectResult(handle, 'Cancelled');
  });
  await save(h, `vm-request-${serial}`, 'vmRequest-cancelled-build');
  await save(h, `vm-build-${serial}-1`, 'vmBuild-cancelled');
}

/** Fulfilled, the lease extended by three days, then it runs out by itself (skipped time). */
async function extendedLease(h: WorkflowHarness): Promise<void> {
  const serial = 'VM-RP004';
  const world = await h.world();
  await h.withWorker(world, `rec-${serial}`, async () => {
    const request = await h.request(serial, { periodDays: 7 });
    const handle = await h.env.client.workflow.start(vmRequest, { workflowId: `vm-request-${serial}`, taskQueue: `rec-${serial}`, args: [{ request, policy: defaultRequestPolicy }] });
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'admin' }] });
    await until(handle, 'Fulfilled');
    const newEnd = new Date(Date.parse(request.period.end) + 3 * DAY).toISOString();
    await handle.executeUpdate(extendUpdate, { args: [{ by: 'rita', newEnd, note: 'report writing' }] });
    const record = await expectResult(handle, 'Completed');
    if (record.request.period.end !== newEnd) throw new Error(`the extension was lost: ${record.request.period.end}`);
  });
  await save(h, `vm-request-${serial}`, 'vmRequest-extended-lease');
}

/**
 * One clusterSync run that finds a fulfilled request's VM stopped behind pveflow's back and tells the request. On a
 * dev server: the sync finds requests through visibility, which the time-skipping server does not offer.
 */
async function syncRun(h: WorkflowHarness): Promise<void> {
  const serial = 'VM-RP005';
  const taskQueue = `rec-${serial}`;
  const world = await h.world();
  const env = await TestWorkflowEnvironment.createLocal({
    server: { executable: { type: 'existing-path', path: requireTemporalBinary('temporal') }, searchAttributes: searchAttributeDefinitions },
  });
  const deps = createActivityDeps(loadConfig({ ...world.env, TEMPORAL_TASK_QUEUE: taskQueue }));
  const ownClient = deps.temporal.client;
  deps.temporal.client = env.client;
  deps.settings.pollMinMs = 20;
  deps.settings.pollMaxMs = 200;
  try {
    const worker = await createWorker({ connection: env.nativeConnection, namespace: 'default', taskQueue, deps, workflowBundle: h.bundle });
    await worker.runUntil(async () => {
      // The dev server runs on the wall clock, not on the test server's skipped one.
      const period = { start: new Date(Date.now() - 60_000).toISOString(), end: new Date(Date.now() + 30 * DAY).toISOString() };
      const request = await h.request(serial, { period });
      const handle = await env.client.workflow.start(vmRequest, { workflowId: `vm-request-${serial}`, taskQueue, args: [{ request, policy: defaultRequestPolicy }] });
      await handle.executeUpdate(approveUpdate, { args: [{ by: 'admin' }] });
      const { vmid } = (await until(handle, 'Fulfilled')).device;
      await waitFor('the request visible with its VM', async () => {
        for await (const _ of env.client.workflow.list({ query: `WorkflowId = '${handle.workflowId}' AND VmId = ${vmid}` })) return true;
        return undefined;
      });
      const node = (await handle.query(statusQuery)).device.node!;
      const root = new PveClient({ endpoint: world.env.PVE_ENDPOINT, tokenId: world.rootToken.id, tokenSecret: world.rootToken.secret, ca: readFileSync(world.env.PVE_CA_FILE), timeoutMs: 10_000 });
      try {
        const stopped = await waitForTask(root, await root.vmPower(node, vmid!, 'stop'), { minPollMs: 20 });
        if (!stopped.ok) throw new Error(`could not stop VM ${vmid} behind pveflow's back`);
      } finally {
        await root.close();
      }
      await sleep(simulatorTimings.fast.resourcesLagMs! * 3); // /cluster/resources lags behind, as on a real cluster
      const result = await env.client.workflow.execute(clusterSync, { workflowId: 'cluster-sync-record', taskQueue });
      if (result.drifts.length !== 1) throw new Error(`clusterSync should have seen the stopped VM: ${JSON.stringify(result)}`);
      await handle.executeUpdate(completeUpdate, { args: [{ by: 'rita' }] });
      await expectResult(handle, 'Completed');
      await saveFrom(env.client, 'cluster-sync-record', 'clusterSync-run');
    });
  } finally {
    deps.temporal.client = ownClient;
    await closeActivityDeps(deps);
    await env.teardown();
  }
}

/** Two builds at once under one clone slot per storage (one waits for the other's release), each with a static address: cloneSlots, ipPool, vmBuild. */
async function slotsAndAddresses(h: WorkflowHarness): Promise<void> {
  const taskQueue = 'rec-slots';
  const world = await h.world({}, { PVE_CLONE_LIMIT_PER_STORAGE: '1', PVE_IP_POOL: '10.77.0.0/29', PVE_IP_GATEWAY: '10.77.0.1', PVE_IP_EXCLUDE: '10.77.0.2' });
  await h.withWorker(world, taskQueue, async () => {
    const handles = await Promise.all(['VM-RP010', 'VM-RP011'].map((serial) => startRequest(h, serial, taskQueue)));
    await Promise.all(handles.map((handle) => handle.executeUpdate(approveUpdate, { args: [{ by: 'admin' }] })));
    for (const handle of handles) await until(handle, 'Fulfilled');
    for (const handle of handles) {
      await handle.executeUpdate(completeUpdate, { args: [{ by: 'rita' }] });
      await expectResult(handle, 'Completed');
    }
  });
  await save(h, cloneSlotsWorkflowId(taskQueue), 'cloneSlots-two-builds');
  await save(h, ipPoolWorkflowId(taskQueue), 'ipPool-leased-and-released');
  await save(h, 'vm-build-VM-RP010-1', 'vmBuild-static-address');
}

/** Two keys issued (one retried), their use reported, one revoked: apiKeyRegistry. No key in clear: only hashes. */
async function keyRegistry(h: WorkflowHarness): Promise<void> {
  const taskQueue = 'rec-keys';
  const workflowId = apiKeyRegistryWorkflowId(taskQueue);
  await h.withWorker(await h.world(), taskQueue, async () => {
    // The worker started it, as every worker does (ensureCoordinators).
    const handle = h.env.client.workflow.getHandle(workflowId);
    const key = (id: string, role: 'admin' | 'operator') => ({
      id,
      name: `recorded ${role}`,
      role,
      ...(role === 'admin' ? { org: 'Acme Corp' } : {}),
      owner: 'operator:ops',
      sha256: createHash('sha256').update(`recorded-key-${id}`).digest('hex'),
    });
    await handle.executeUpdate(issueKeyUpdate, { args: [key('key-rec1', 'admin')], updateId: 'issue-key-rec1' });
    await handle.executeUpdate(issueKeyUpdate, { args: [key('key-rec1', 'admin')] });
    await handle.executeUpdate(issueKeyUpdate, { args: [key('key-rec2', 'operator')] });
    await handle.signal(keysUsedSignal, { used: { 'key-rec1': '2026-12-07T12:00:00.000Z', ops: '2026-12-07T12:00:00.000Z' } });
    await handle.executeUpdate(revokeKeyUpdate, { args: [{ id: 'key-rec2', by: 'operator:ops' }] });
    await handle.executeUpdate(revokeKeyUpdate, { args: [{ id: 'key-rec1', org: 'Globex', by: 'ada' }] }).then(
      () => {
        throw new Error('an admin of another org revoked a key');
      },
      () => undefined,
    );
    const answer = await handle.query(issuedKeysQuery, {});
    if (answer.keys?.map((k) => k.id).join() !== 'key-rec1') throw new Error(`unexpected keys: ${JSON.stringify(answer)}`);
    await handle.terminate('recorded');
  });
  await save(h, workflowId, 'apiKeyRegistry-issued-used-revoked');
}

/** One request approved, fulfilled and completed on its own task queue and a fresh world. */
async function wholeLifecycle(h: WorkflowHarness, serial: string): Promise<void> {
  const world = await h.world();
  await h.withWorker(world, `rec-${serial}`, async () => {
    const handle = await startRequest(h, serial, `rec-${serial}`);
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'admin' }] });
    await until(handle, 'Fulfilled');
    await handle.executeUpdate(completeUpdate, { args: [{ by: 'rita' }] });
    await expectResult(handle, 'Completed');
  });
}

async function startRequest(h: WorkflowHarness, serial: string, taskQueue: string) {
  return h.env.client.workflow.start(vmRequest, { workflowId: `vm-request-${serial}`, taskQueue, args: [{ request: await h.request(serial), policy: defaultRequestPolicy }] });
}

async function until(handle: WorkflowHandle<typeof vmRequest>, status: RequestStatus): Promise<RequestRecord> {
  let last: RequestRecord | undefined;
  try {
    return await waitFor(
      `${handle.workflowId} ${status}`,
      async () => {
        last = await handle.query(statusQuery);
        return last.status === status ? last : undefined;
      },
      120_000,
      50,
    );
  } catch (err) {
    // What it was doing instead is what a re-recorder needs to see.
    throw new Error(`${(err as Error).message}; it is ${last?.status}: ${JSON.stringify(last?.timeline.slice(-3))} build ${JSON.stringify(last?.build?.log.slice(-3))}`, { cause: err });
  }
}

async function expectResult(handle: WorkflowHandle<typeof vmRequest>, status: RequestStatus): Promise<RequestRecord> {
  const record = await handle.result();
  if (record.status !== status) throw new Error(`${handle.workflowId} ended ${record.status}, expected ${status}: ${JSON.stringify(record.timeline)}`);
  return record;
}

async function save(h: WorkflowHarness, workflowId: string, name: string): Promise<void> {
  await saveFrom(h.env.client, workflowId, name);
}

async function saveFrom(client: Client, workflowId: string, name: string): Promise<void> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  writeFileSync(join(OUT, `${name}.json`), `${historyToJson(history)}\n`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
