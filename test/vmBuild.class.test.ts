import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { SimulatedWorld } from '../src/simulators/world';
import { cloneSlotsQuery, releasePlacementSignal, requestCloneSlotSignal } from '../src/contracts/cloneSlotsMessages';
import { buildStatusQuery, cancelUpdate } from '../src/contracts/messages';
import type { RequestRecord } from '../src/contracts/types';
import { createLocalTemplate } from './support/localTemplate';
import { useWorkflowHarness } from './support/workflowHarness';
import { waitFor } from './support/waitFor';
import { buildWorkflowId, cloneSlotsWorkflowId } from '../src/contracts/workflowIds';
import { requestDriver } from './support/requestDriver';

/**
 * A class of identical VMs built at once from a template on one node's local storage (proxmox-behaviour.md §5,
 * §6.1): every clone allocates its disks under that storage's lock, which Proxmox waits on for 10 s only. The
 * simulator holds the lock for each allocation (here 200 ms against a 500 ms timeout: a slow
 * LVM-thin under heavy load), so a whole class cloned at once makes the late ones time out. With clone slots per node and
 * storage, the same class clones without a single lock timeout, never more clones at once than the limit.
 */
const CLASS_SIZE = 8;
const LOCAL_TEMPLATE = 9100;

describe('a class of identical VMs under clone slots', () => {
  const harness = useWorkflowHarness();

  async function buildClass(prefix: string, limits: { perNode: number; perStorage: number }) {
    const server = await harness.h.localEnv();
    const world = await harness.h.world({ storageAllocMs: 200, flockTimeoutMs: 500 }, { PVE_CLONE_LIMIT_PER_NODE: String(limits.perNode), PVE_CLONE_LIMIT_PER_STORAGE: String(limits.perStorage) });
    await createLocalTemplate(world, 'pve1', LOCAL_TEMPLATE);
    const taskQueue = `class-${prefix}`;
    return harness.h.withWorker(
      world,
      taskQueue,
      async () => {
        const peak = watchPeakClones(world);
        try {
          const serials = Array.from({ length: CLASS_SIZE }, (_, i) => `VM-${prefix}${String(i).padStart(2, '0')}`);
          const requests = requestDriver(server.client, taskQueue);
          const driven = await Promise.all(serials.map(async (serial) => requests.startApproved(await harness.h.request(serial, { templateVmid: LOCAL_TEMPLATE, name: 'lab' }, server))));
          const records: RequestRecord[] = await Promise.all(driven.map((r) => r.waitForStatus(['Fulfilled', 'Failed'], { timeoutMs: 180_000 })));
          const slots = limits.perNode + limits.perStorage > 0 ? await server.client.workflow.getHandle(cloneSlotsWorkflowId(taskQueue)).query(cloneSlotsQuery) : undefined;
          return { records, peak: peak.value, storageLockTimeouts: storageLockTimeouts(world), slots, world };
        } finally {
          peak.stop();
        }
      },
      server,
    );
  }

  /**
   * The slot of pve1's clones (its limit 1), held by a request still pending approval (any running workflow can hold
   * one), whose need reserves `needCpu` of pve1's one free CPU; once the coordinator has granted it.
   */
  async function holdPve1CloneSlot(server: TestWorkflowEnvironment, taskQueue: string, serial: string, needCpu: number) {
    const slots = server.client.workflow.getHandle(cloneSlotsWorkflowId(taskQueue));
    const driver = requestDriver(server.client, taskQueue);
    const { handle: blocker } = await driver.startPending(await harness.h.request(serial, {}, server));
    await slots.signal(requestCloneSlotSignal, {
      holder: blocker.workflowId,
      keys: ['node/pve1'],
      limits: { 'node/pve1': 1 },
      offers: [{ node: 'pve1', freeCpu: 1, freeMem: 0 }],
      need: { cpu: needCpu, mem: 0 },
      running: [],
      ttlMs: 600_000,
    });
    await waitFor('the blocker to hold the slot', async () => ((await slots.query(cloneSlotsQuery)).held.length === 1 ? true : undefined));
    return { slots, driver, blocker };
  }

  test('without limits, a class cloned at once runs into the storage lock', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const { peak, storageLockTimeouts } = await buildClass('CLU', { perNode: 0, perStorage: 0 });
    assert.ok(peak > 2, `clones ran ${peak} at once`);
    assert.ok(storageLockTimeouts > 0, `no clone task failed on the storage lock (peak ${peak} at once)`);
  });

  test('with 2 clones per storage, the whole class is fulfilled without one lock timeout', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const { records, peak, storageLockTimeouts, slots, world } = await buildClass('CLL', { perNode: 4, perStorage: 2 });
    for (const r of records) assert.equal(r.status, 'Fulfilled', `${r.serial}: ${r.build?.error}`);
    assert.ok(peak <= 2, `clones ran ${peak} at once`);
    assert.equal(storageLockTimeouts, 0);
    assert.deepEqual(slots, { held: [], waiting: [], reserved: [] }, 'every slot and place was given back');
    const vms = world.pve.dump().vms.filter((v) => !v.template);
    assert.equal(vms.length, CLASS_SIZE, 'one VM per request');
    assert.ok(
      vms.every((v) => v.node === 'pve1'),
      'all on the template node',
    );
  });

  test('a build waits for its clone slot in plain sight, and cancelled while waiting gives its place back', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const server = await harness.h.localEnv();
    const world = await harness.h.world({}, { PVE_CLONE_LIMIT_PER_NODE: '1', PVE_CLONE_LIMIT_PER_STORAGE: '1' });
    await createLocalTemplate(world, 'pve1', LOCAL_TEMPLATE);
    const taskQueue = 'slots-cancel';
    await harness.h.withWorker(
      world,
      taskQueue,
      async () => {
        const { slots, driver, blocker } = await holdPve1CloneSlot(server, taskQueue, 'VM-CLB00', 0);

        const request = await harness.h.request('VM-CLW00', { templateVmid: LOCAL_TEMPLATE }, server);
        const { handle } = await driver.startApproved(request);
        const build = server.client.workflow.getHandle(buildWorkflowId('VM-CLW00', 1));
        const status = await waitFor('the build to wait for its slot', async () => {
          const b = await build.query(buildStatusQuery).catch(() => undefined);
          return b?.stage === 'waiting-for-clone-slot' ? b : undefined;
        });
        assert.match(status.log.at(-1)?.message ?? '', /^waiting for a clone slot on pve1\/local-lvm/);
        const view = await slots.query(cloneSlotsQuery);
        assert.deepEqual(
          view.waiting.map((w) => w.holder),
          [build.workflowId],
        );
        assert.deepEqual(view.reserved.map((r) => r.holder).sort(), [blocker.workflowId, build.workflowId].sort());
        const history = JSON.stringify((await build.fetchHistory()).events);
        assert.ok(history.includes('requestCloneSlot'), "the ask is in the build's history");

        await handle.executeUpdate(cancelUpdate, { args: [{ by: 'admin' }] });
        await waitFor('the cancelled build to give its place back', async () => {
          const v = await slots.query(cloneSlotsQuery);
          return v.waiting.length === 0 && !v.reserved.some((r) => r.holder === build.workflowId) ? true : undefined;
        });
        assert.deepEqual(
          (await slots.query(cloneSlotsQuery)).held.map((h) => h.holder),
          [blocker.workflowId],
          'the blocker keeps its slot',
        );
        assert.equal(world.pve.dump().vms.filter((v) => !v.template).length, 0, 'nothing was cloned');
        await slots.signal(releasePlacementSignal, { holder: blocker.workflowId });
        await blocker.terminate();
      },
      server,
    );
  });

  test('an image with a template per node waits only for the clone slot of the node it clones on; an ask without per-place keys still waits for all of its keys', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const server = await harness.h.localEnv();
    const world = await harness.h.world({}, { PVE_CLONE_LIMIT_PER_NODE: '1', PVE_CLONE_LIMIT_PER_STORAGE: '0' });
    const perNode = [
      { node: 'pve1', vmid: 9101 },
      { node: 'pve2', vmid: 9102 },
    ];
    for (const tpl of perNode) await createLocalTemplate(world, tpl.node, tpl.vmid);
    const taskQueue = 'slots-per-place';
    await harness.h.withWorker(
      world,
      taskQueue,
      async () => {
        // pve1's only clone slot is held, and pve1 reserved so fully that the coordinator places the build on pve2.
        const { slots, driver, blocker } = await holdPve1CloneSlot(server, taskQueue, 'VM-CPB00', 1000);

        const request = await harness.h.request('VM-CPW00', { templateVmid: 9101, imageTemplates: perNode }, server);
        const record = await (await driver.startApproved(request)).waitForStatus(['Fulfilled', 'Failed'], { timeoutMs: 90_000 });
        assert.equal(record.status, 'Fulfilled', record.build?.error);
        assert.equal(record.device.node, 'pve2', "cloned on pve2, whose slot was free, while pve1's was held");

        // A build of an earlier version asks with its keys only (no per-place keys): it waits for every one of them.
        const { handle: earlier } = await driver.startPending(await harness.h.request('VM-CPO00', {}, server));
        await slots.signal(requestCloneSlotSignal, {
          holder: earlier.workflowId,
          keys: ['node/pve1', 'node/pve2'],
          limits: { 'node/pve1': 1, 'node/pve2': 1 },
          offers: [{ node: 'pve2', freeCpu: 1, freeMem: 0 }],
          need: { cpu: 0, mem: 0 },
          running: [],
          ttlMs: 600_000,
        });
        const view = await waitFor('the earlier ask to be seen', async () => {
          const v = await slots.query(cloneSlotsQuery);
          return v.waiting.some((w) => w.holder === earlier.workflowId) ? v : undefined;
        });
        assert.deepEqual(
          view.waiting.map((w) => w.keys),
          [['node/pve1', 'node/pve2']],
          "the earlier ask waits for pve1's slot too",
        );
        for (const h of [blocker, earlier]) {
          await slots.signal(releasePlacementSignal, { holder: h.workflowId });
          await h.terminate();
        }
      },
      server,
    );
  });

  test('with no clone limit and one place to go, a build neither asks nor waits', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const server = await harness.h.localEnv();
    const world = await harness.h.world({}, { PVE_CLONE_LIMIT_PER_NODE: '0', PVE_CLONE_LIMIT_PER_STORAGE: '0' });
    await createLocalTemplate(world, 'pve1', LOCAL_TEMPLATE);
    const taskQueue = 'slots-sole';
    await harness.h.withWorker(
      world,
      taskQueue,
      async () => {
        const request = await harness.h.request('VM-CLS00', { templateVmid: LOCAL_TEMPLATE }, server);
        const record = await (await requestDriver(server.client, taskQueue).startApproved(request)).waitForStatus(['Fulfilled', 'Failed']);
        assert.equal(record.status, 'Fulfilled', record.build?.error);
        const build = server.client.workflow.getHandle(buildWorkflowId('VM-CLS00', 1));
        const history = JSON.stringify((await build.fetchHistory()).events);
        assert.ok(!history.includes('requestCloneSlot') && !history.includes('releasePlacement'), 'no signal to the coordinator');
        assert.ok(!record.build?.log.some((l) => l.stage === 'waiting-for-clone-slot'), 'no wait for a clone slot');
        assert.deepEqual(await server.client.workflow.getHandle(cloneSlotsWorkflowId(taskQueue)).query(cloneSlotsQuery), { held: [], waiting: [], reserved: [] });
        assert.deepEqual(
          world.pve
            .dump()
            .vms.filter((v) => !v.template)
            .map((v) => v.node),
          ['pve1'],
        );
      },
      server,
    );
  });

  test('a build that finds no clone-slots coordinator fails saying what to do, having made nothing', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const server = await harness.h.localEnv();
    const world = await harness.h.world();
    const taskQueue = 'slots-missing';
    await harness.h.withWorker(
      world,
      taskQueue,
      async () => {
        // The worker started it; an operator terminated it since.
        await server.client.workflow.getHandle(cloneSlotsWorkflowId(taskQueue)).terminate('test: coordinator gone');
        const request = await harness.h.request('VM-CLM00', {}, server);
        const record = await (await requestDriver(server.client, taskQueue).startApproved(request)).waitForStatus('Failed');
        assert.equal(record.build?.stage, 'waiting-for-clone-slot');
        assert.match(record.build?.error ?? '', /pveflow-clone-slots-slots-missing/);
        assert.match(record.build?.error ?? '', /Start or restart a worker for that task queue, then rebuild/);
        assert.equal(world.pve.dump().vms.filter((v) => !v.template).length, 0, 'nothing was cloned');
      },
      server,
    );
  });
});

/** Clone tasks that failed because a disk allocation gave up on the template storage's lock. */
function storageLockTimeouts(world: SimulatedWorld): number {
  return world.pve.dump().tasks.filter((t) => t.type === 'qmclone' && /pve-storage-local-lvm' - got timeout/.test(t.exitstatus ?? '')).length;
}

/** The most clone tasks running at once, sampled every 10 ms. */
function watchPeakClones(world: SimulatedWorld) {
  const state = { value: 0 };
  const timer = setInterval(() => {
    const running = world.pve.dump().tasks.filter((t) => t.type === 'qmclone' && t.status === 'running').length;
    state.value = Math.max(state.value, running);
  }, 10);
  return {
    get value() {
      return state.value;
    },
    stop: () => clearInterval(timer),
  };
}
