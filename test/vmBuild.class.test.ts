import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { SimulatedWorld } from '../src/simulators/world';
import { cloneSlots } from '../src/workflows';
import { acquireCloneSlotUpdate, cloneSlotsQuery, handOverCloneSlotUpdate } from '../src/contracts/cloneSlotsMessages';
import type { RequestRecord } from '../src/contracts/types';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import { withCloneSlot } from '../src/activities/proxmox/cloneSlot';
import { createLocalTemplate } from './support/localTemplate';
import { harnessSkipReason, useWorkflowHarness } from './support/workflowHarness';
import { waitFor } from './support/waitFor';
import { requestDriver } from './support/requestDriver';
import { cloneSlotsWorkflowId } from '../src/contracts/workflowIds';

/**
 * A class of identical VMs built at once from a template on one node's local storage (proxmox-behaviour.md §5,
 * §6.1): every clone allocates its disks under that storage's lock, which Proxmox waits on for 10 s only. The
 * simulator holds the lock for each allocation (here 200 ms against a 500 ms timeout: a slow
 * LVM-thin under heavy load), so a whole class cloned at once makes the late ones time out. With clone slots per node and
 * storage, the same class clones without a single lock timeout, never more clones at once than the limit.
 */
const skip = harnessSkipReason();
const CLASS_SIZE = 8;
const LOCAL_TEMPLATE = 9100;

describe('a class of identical VMs under clone slots', { skip }, () => {
  const harness = useWorkflowHarness();

  /** A cloneSlots workflow of its own on `taskQueue`, with a worker, for `fn`; terminated afterwards. */
  async function withSlotsWorkflow(taskQueue: string, fn: (handle: WorkflowHandle<typeof cloneSlots>, client: Client) => Promise<void>) {
    const server = await harness.h.localEnv();
    const world = await harness.h.world();
    await harness.h.withWorker(world, taskQueue, async () => {
      const handle = await server.client.workflow.start(cloneSlots, { workflowId: cloneSlotsWorkflowId(taskQueue), taskQueue, args: [{}] });
      try {
        await fn(handle, server.client);
      } finally {
        await handle.terminate();
      }
    }, server);
  }

  async function buildClass(prefix: string, limits: { perNode: number; perStorage: number }) {
    const server = await harness.h.localEnv();
    const world = await harness.h.world(
      { storageAllocMs: 200, flockTimeoutMs: 500 },
      { PVE_CLONE_LIMIT_PER_NODE: String(limits.perNode), PVE_CLONE_LIMIT_PER_STORAGE: String(limits.perStorage) },
    );
    await createLocalTemplate(world, 'pve1', LOCAL_TEMPLATE);
    const taskQueue = `class-${prefix}`;
    return harness.h.withWorker(world, taskQueue, async () => {
      const peak = watchPeakClones(world);
      try {
        const serials = Array.from({ length: CLASS_SIZE }, (_, i) => `VM-${prefix}${String(i).padStart(2, '0')}`);
        const requests = requestDriver(server.client, taskQueue);
        const driven = await Promise.all(
          serials.map(async (serial) => requests.startApproved(await harness.h.request(serial, { templateVmid: LOCAL_TEMPLATE, name: 'lab' }, server))),
        );
        const records: RequestRecord[] = await Promise.all(driven.map((r) => r.waitForStatus(['Fulfilled', 'Failed'], { timeoutMs: 180_000 })));
        const slots = limits.perNode + limits.perStorage > 0
          ? await server.client.workflow.getHandle(cloneSlotsWorkflowId(taskQueue)).query(cloneSlotsQuery)
          : undefined;
        return { records, peak: peak.value, storageLockTimeouts: storageLockTimeouts(world), slots, world };
      } finally {
        peak.stop();
      }
    }, server);
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
    assert.deepEqual(slots, { held: [], waiting: [] }, 'every slot was given back');
    const vms = world.pve.dump().vms.filter((v) => !v.template);
    assert.equal(vms.length, CLASS_SIZE, 'one VM per request');
    assert.ok(vms.every((v) => v.node === 'pve1'), 'all on the template node');
  });

  test('a slot handed over goes to the next clone only in its turn: an earlier ask from another worker comes first', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    await withSlotsWorkflow('slots-handover', async (handle) => {
      const ask = (holder: string) => ({ holder, keys: ['storage/ceph'], limits: { 'storage/ceph': 1 }, ttlMs: 600_000 });
      const view = () => handle.query(cloneSlotsQuery);
      assert.equal((await handle.executeUpdate(acquireCloneSlotUpdate, { args: [ask('a')] })).granted, true);
      const otherWorker = handle.executeUpdate(acquireCloneSlotUpdate, { args: [ask('other-worker')] });
      await waitFor('the other worker\'s ask queued', async () => ((await view()).waiting.length === 1 ? true : undefined));

      const first = await handle.executeUpdate(handOverCloneSlotUpdate, { args: [{ from: 'a', next: ask('b') }] });
      assert.equal(first.granted, false, 'the earlier ask is served first');
      assert.equal((await otherWorker).granted, true);
      assert.deepEqual((await view()).held.map((h) => h.holder), ['other-worker'], 'a released, the slot is the other worker\'s');
      assert.deepEqual((await view()).waiting.map((w) => w.holder), ['b'], 'b keeps its place in the queue');

      const bAsks = handle.executeUpdate(acquireCloneSlotUpdate, { args: [ask('b')] });
      const second = await handle.executeUpdate(handOverCloneSlotUpdate, { args: [{ from: 'other-worker', next: ask('c') }] });
      assert.equal(second.granted, false, 'b has waited longer than c');
      assert.equal((await bAsks).granted, true, 'b\'s ask, made after its place was taken, is granted in that place');

      const third = await handle.executeUpdate(handOverCloneSlotUpdate, { args: [{ from: 'b', next: ask('c') }] });
      assert.equal(third.granted, true, 'first in line, c gets the slot in the same step');
      assert.deepEqual(await view(), { held: [{ holder: 'c', keys: ['storage/ceph'] }], waiting: [] });
    });
  });

  test('a retried clone that still holds its slot gets through, not queued behind clones waiting for that slot', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const taskQueue = 'slots-retry';
    await withSlotsWorkflow(taskQueue, async (handle, client) => {
      const slot = (holder: string) => ({ holder, keys: ['storage/ceph'], limits: { 'storage/ceph': 1 } });
      // The slot of a clone whose worker died mid-clone: still held.
      assert.equal((await handle.executeUpdate(acquireCloneSlotUpdate, { args: [{ ...slot('crashed'), ttlMs: 600_000 }] })).granted, true);
      // A new clone in this worker takes this process's one place and waits for that slot.
      const waiting = new MockActivityEnvironment({ attempt: 1, taskQueue }).run(() => withCloneSlot(client, slot('waiting'), async () => 'waiting cloned'));
      await waitFor('the new clone queued in the workflow', async () => ((await handle.query(cloneSlotsQuery)).waiting.length === 1 ? true : undefined));
      // The crashed clone's retry, in this worker: it must take its slot back and release it.
      const retried = new MockActivityEnvironment({ attempt: 2, taskQueue }).run(() => withCloneSlot(client, slot('crashed'), async () => 'crashed cloned'));
      assert.equal(await withTimeout(retried, 30_000, 'the retried clone waited behind the clone waiting for its slot'), 'crashed cloned');
      assert.equal(await withTimeout(waiting, 30_000, 'the waiting clone never got the released slot'), 'waiting cloned');
      assert.deepEqual(await handle.query(cloneSlotsQuery), { held: [], waiting: [] });
    });
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

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const late = new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} (${ms} ms)`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
