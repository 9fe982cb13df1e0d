import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, type Worker, type WorkflowBundle } from '@temporalio/worker';
import { PveClient, waitForTask } from '../src/clients/pve';
import { loadConfig } from '../src/config';
import { deviceNames } from '../src/domain/deviceNames';
import { defaultRequestPolicy } from '../src/domain/requestPolicyRules';
import { simulatorTimings } from '../src/embedded/simulatorTimings';
import { startSimulatedWorld, type SimulatedWorld } from '../src/simulators/world';
import { requireTemporalBinary } from '../src/temporal/binaries';
import { closeActivityDeps, createActivityDeps, createWorker } from '../src/worker';
import type { vmRequest } from '../src/workflows';
import { completeUpdate, migrateUpdate, powerUpdate, reconfigureUpdate, snapshotUpdate, statusQuery } from '../src/contracts/messages';
import { searchAttributeDefinitions } from '../src/contracts/searchAttributes';
import type { RequestRecord } from '../src/contracts/types';
import type { CallerRole, OperationResult } from '../src/contracts/vmOperations';
import { deviceRequest, requestDriver } from './support/requestDriver';
import { quietLogger } from './support/quietLogger';
import { waitFor } from './support/waitFor';

/**
 * Day-2 operations as Updates on a fulfilled request, on a real Temporal server (a dev server: nothing here waits on
 * a timer) with the real activities against the simulated cluster. Each simulated node has its own snippets
 * directory behind its own SFTP endpoint, so that a migration shows where the snippet went. The guest takes 1.5 s
 * to shut down: long enough for a second operation to arrive while one runs.
 */
const NODES = ['pve1', 'pve2', 'pve3'];

describe('day-2 operations on a request’s VM', () => {
  let env: TestWorkflowEnvironment;
  let bundle: WorkflowBundle;
  let world: SimulatedWorld;
  let dir: string;
  let root: PveClient;
  let deps: ReturnType<typeof createActivityDeps>;
  let worker: Worker;
  let running: Promise<void>;
  const taskQueue = 'day2-ops';

  before(async () => {
    env = await TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path: requireTemporalBinary('temporal') }, searchAttributes: searchAttributeDefinitions },
    });
    bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../src/workflows'), logger: quietLogger });
    dir = mkdtempSync(join(tmpdir(), 'pveflow-day2-wf-'));
    world = await startSimulatedWorld({ dir, timing: { ...simulatorTimings.fast, shutdownMs: 1_500, snapshotMs: 20, migrateMs: 40 } });
    root = new PveClient({ endpoint: world.env.PVE_ENDPOINT, tokenId: world.rootToken.id, tokenSecret: world.rootToken.secret, ca: readFileSync(world.env.PVE_CA_FILE), timeoutMs: 10_000 });
    deps = createActivityDeps(loadConfig({ ...world.env, CREDENTIAL_KEYS_DIR: join(dir, 'keys'), TEMPORAL_TASK_QUEUE: taskQueue }));
    deps.temporal.client = env.client;
    deps.settings.pollMinMs = 20;
    deps.settings.pollMaxMs = 200;
    worker = await createWorker({ connection: env.nativeConnection, namespace: 'default', taskQueue, deps, workflowBundle: bundle });
    running = worker.run();
  });
  after(async () => {
    worker?.shutdown();
    await running;
    if (deps) await closeActivityDeps(deps);
    await root?.close();
    await world?.stop();
    await env?.teardown();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  let ids = 0;
  const call = (role: CallerRole, note?: string) => ({ id: `op-${++ids}`, by: `${role}@acme.example`, role, ...(note ? { note } : {}) });

  const policy = { ...defaultRequestPolicy, snapshotLimit: 2, shutdownTimeoutSeconds: 10 };
  async function fulfilled(serial: string): Promise<{ handle: WorkflowHandle<typeof vmRequest>; record: RequestRecord }> {
    const driven = await requestDriver(env.client, taskQueue).startApproved(deviceRequest(serial, { name: 'ops' }), { policy });
    return { handle: driven.handle, record: await driven.waitForStatus('Fulfilled') };
  }
  const refusal = async (p: Promise<unknown>, reason: RegExp) =>
    assert.rejects(p, (err: unknown) => {
      assert.ok(err instanceof WorkflowUpdateFailedError, String(err));
      assert.match(err.cause?.message ?? '', reason);
      return true;
    });
  const vmStatus = async (r: RequestRecord) => (await root.vmStatus(r.device.node!, r.device.vmid!)).status;

  test('power cycle: shutdown, start, reboot, stop, each recorded with who and why', async () => {
    const { handle, record } = await fulfilled('VM-OPS01');
    const shutdown = await handle.executeUpdate(powerUpdate, { args: [{ ...call('requester', 'weekend'), action: 'shutdown' }] });
    assert.equal(shutdown.operation.state, 'succeeded');
    assert.equal(shutdown.operation.outcome, 'the guest shut down');
    assert.equal(shutdown.power, 'stopped');
    assert.equal(await vmStatus(record), 'stopped');
    assert.equal((await handle.executeUpdate(powerUpdate, { args: [{ ...call('admin'), action: 'start' }] })).power, 'running');
    assert.equal(await vmStatus(record), 'running');
    assert.equal((await handle.executeUpdate(powerUpdate, { args: [{ ...call('operator'), action: 'reboot' }] })).operation.outcome, 'rebooted');
    assert.equal((await handle.executeUpdate(powerUpdate, { args: [{ ...call('requester'), action: 'stop' }] })).operation.outcome, 'stopped');
    assert.equal(await vmStatus(record), 'stopped');

    const r = await handle.query(statusQuery);
    assert.deepEqual(
      r.timeline.filter((e) => e.event.startsWith('power shutdown')).map((e) => [e.event, e.by]),
      [
        ['power shutdown asked: weekend', 'requester@acme.example'],
        ['power shutdown: the guest shut down', undefined],
      ],
    );
    assert.deepEqual(
      r.operations?.map((o) => [o.what, o.state, o.by]),
      [
        ['power shutdown', 'succeeded', 'requester@acme.example'],
        ['power start', 'succeeded', 'admin@acme.example'],
        ['power reboot', 'succeeded', 'operator@acme.example'],
        ['power stop', 'succeeded', 'requester@acme.example'],
      ],
    );
    assert.equal(r.device.state, 'stopped');
  });

  test('reconfigure: live where the VM hot-plugs, refused until a reboot is confirmed where it does not', async () => {
    const { handle, record } = await fulfilled('VM-OPS02');
    const { vmid, node } = record.device as { vmid: number; node: string };
    // An operator's template choice: CPU and memory hot-plug on a NUMA guest with room for 8 CPUs, 2 of them plugged.
    const ok = async (upid: Promise<string>) => assert.ok((await waitForTask(root, await upid, { minPollMs: 20 })).ok);
    await ok(root.updateVmConfig(node, vmid, { hotplug: 'network,disk,cpu,memory', numa: 1, cores: 8, vcpus: 2 }));
    await ok(root.vmPower(node, vmid, 'reboot'));
    await waitFor('running again', async () => ((await root.vmStatus(node, vmid)).status === 'running' ? true : undefined));

    const live = await handle.executeUpdate(reconfigureUpdate, { args: [{ ...call('requester'), cores: 4, memoryMiB: 4096, diskGiB: 10 }] });
    assert.equal(live.operation.outcome, 'live: disk 4 → 10 GiB, cores 2 → 4, memory 2048 → 4096 MiB');
    assert.deepEqual(await root.vmPendingConfig(node, vmid).then((p) => p.filter((e) => e.pending !== undefined || e.delete)), []);

    const before = (await root.vmStatus(node, vmid)).pid;
    await refusal(
      handle.executeUpdate(reconfigureUpdate, { args: [{ ...call('requester'), cores: 12 }] }),
      /^a reboot is needed to apply cores 4 → 12 \(CPUs hot-plug only up to the VM's 8\); nothing was changed\. Send confirm_reboot: true/,
    );
    assert.equal((await root.vmConfig(node, vmid)).raw.cores, 8, 'nothing changed');
    const confirmed = await handle.executeUpdate(reconfigureUpdate, { args: [{ ...call('requester', 'compile job'), cores: 12, confirmReboot: true }] });
    assert.equal(confirmed.operation.outcome, 'after a reboot: cores 4 → 12 (rebooted)');
    const after = await root.vmStatus(node, vmid);
    assert.notEqual(after.pid, before, 'the VM was restarted');
    assert.equal((await root.vmConfig(node, vmid)).raw.cores, 12);
    const r = await handle.query(statusQuery);
    assert.equal(r.request.cores, 12, 'the request states the VM’s new size');
    assert.deepEqual(
      r.operations?.map((o) => o.state),
      ['succeeded', 'refused', 'succeeded'],
    );
    assert.ok(r.timeline.some((e) => e.event.startsWith('reconfigure cores 12 refused: a reboot is needed')));
  });

  test('snapshots: created with RAM, listed on the record, the limit refused, reverted, deleted', async () => {
    const { handle, record } = await fulfilled('VM-OPS03');
    const snap = (action: 'create' | 'revert' | 'delete', name: string, extra = {}) => handle.executeUpdate(snapshotUpdate, { args: [{ ...call('requester'), action, name, ...extra }] });
    assert.equal((await snap('create', 'clean', { withRam: true, description: 'fresh' })).operation.outcome, 'taken, with the guest’s memory');
    const second = await snap('create', 'patched');
    assert.deepEqual(
      second.snapshots.map((s) => [s.name, s.withRam, s.by]),
      [
        ['clean', true, 'requester@acme.example'],
        ['patched', false, 'requester@acme.example'],
      ],
    );
    await refusal(snap('create', 'third'), /^request VM-OPS03 has 2 snapshots, its limit \(REQUEST_SNAPSHOT_LIMIT\) is 2: delete one first$/);
    await refusal(snap('revert', 'nope'), /has no snapshot nope \(it has clean, patched\)/);
    assert.equal((await snap('revert', 'clean')).operation.outcome, 'reverted; the VM is running');
    assert.equal((await snap('delete', 'patched')).operation.outcome, 'deleted');
    assert.deepEqual(
      (await snap('create', 'third')).snapshots.map((s) => s.name),
      ['clean', 'third'],
    );
    const onCluster = await root.snapshots(record.device.node!, record.device.vmid!);
    assert.deepEqual(onCluster.map((s) => s.name).sort(), ['clean', 'current', 'third']);
  });

  test('migrate: for operators only; the running VM moves online and its snippet follows it', async () => {
    const { handle, record } = await fulfilled('VM-OPS04');
    const from = record.device.node!;
    const to = NODES.find((n) => n !== from)!;
    const snippetOn = (node: string) => existsSync(join(world.snippetsDirOf(node), deviceNames('VM-OPS04', 'ops').snippetFile));
    assert.ok(snippetOn(from));
    await refusal(handle.executeUpdate(migrateUpdate, { args: [{ ...call('admin'), target: to }] }), /^migrate is for operators only; the caller is a admin$/);
    const moved = await handle.executeUpdate(migrateUpdate, { args: [{ ...call('operator', 'drain pve for maintenance'), target: to }] });
    assert.equal(moved.operation.outcome, `moved online from ${from} to ${to}; cloud-init snippet moved to ${to}`);
    assert.equal(moved.node, to);
    assert.equal((await root.vmStatus(to, record.device.vmid!)).status, 'running');
    assert.deepEqual([snippetOn(from), snippetOn(to)], [false, true]);
    // The VM starts from the new node's snippet, and the completion finds it there.
    await handle.executeUpdate(powerUpdate, { args: [{ ...call('requester'), action: 'reboot' }] });
    await handle.executeUpdate(completeUpdate, { args: [{ by: 'admin' }] });
    const final = await handle.result();
    assert.deepEqual(final.leftovers, []);
    assert.equal(snippetOn(to), false);
  });

  test('refusals: before the VM is built, one at a time (naming the running one), the same id answered once, none after completion', async () => {
    const { handle: pending } = await requestDriver(env.client, taskQueue).startPending(deviceRequest('VM-OPS05', { name: 'ops' }), { policy });
    await refusal(
      pending.executeUpdate(powerUpdate, { args: [{ ...call('admin'), action: 'stop' }] }),
      /^cannot power request VM-OPS05: it is Pending — it waits for an approval; power only when Fulfilled \(power stop\)$/,
    );
    await pending.terminate('test over');

    const { handle } = await fulfilled('VM-OPS06');
    const first = call('requester', 'first');
    const shutting = handle.executeUpdate(powerUpdate, { args: [{ ...first, action: 'shutdown' }], updateId: first.id });
    await waitFor('the shutdown running', async () => ((await handle.query(statusQuery)).operations?.some((o) => o.state === 'running') ? true : undefined));
    await refusal(
      handle.executeUpdate(snapshotUpdate, { args: [{ ...call('requester'), action: 'create', name: 'xy' }] }),
      new RegExp(`^cannot snapshot create xy on request VM-OPS06: power shutdown \\(id ${first.id}, by requester@acme\\.example, since [^)]+\\) is running; one operation at a time$`),
    );
    // The same operation again (a client's retry, a new update id): one shutdown, one answer.
    const again = await handle.executeUpdate(powerUpdate, { args: [{ ...first, action: 'shutdown' }] });
    const answered: OperationResult = await shutting;
    assert.deepEqual(again.operation, answered.operation);
    const r = await handle.query(statusQuery);
    assert.equal(r.operations?.length, 1);
    assert.equal(r.timeline.filter((e) => e.event.startsWith('power shutdown asked')).length, 1);
    await refusal(handle.executeUpdate(powerUpdate, { args: [{ ...first, action: 'start' }] }), /operation id op-\d+ was already used for power shutdown/);

    await handle.executeUpdate(completeUpdate, { args: [{ by: 'admin' }] });
    await refusal(
      handle.executeUpdate(powerUpdate, { args: [{ ...call('operator'), action: 'start' }] }),
      /^cannot power request VM-OPS06: it is Completing — its VM and access are being removed; power only when Fulfilled \(power start(; its completion has been asked for)?\)$/,
    );
    assert.equal((await handle.result()).status, 'Completed');
  });
});
