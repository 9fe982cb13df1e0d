import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { SimulatedWorld } from '../src/simulators/world';
import { completeUpdate } from '../src/contracts/messages';
import type { RequestRecord } from '../src/contracts/types';
import { requestDriver } from './support/requestDriver';
import { useWorkflowHarness } from './support/workflowHarness';

/**
 * The failure classes of proxmox-behaviour.md §6 injected into whole builds by the simulator: each build either
 * completes (what a retry fixes) or fails with its undo done and a message an operator can act on.
 */

describe('vmBuild under Proxmox failure classes', () => {
  const harness = useWorkflowHarness();
  let n = 0;

  /** Builds one request in a fresh world prepared by `prepare`; returns its record once it is fulfilled or failed. */
  async function build(opts: { env?: Record<string, string>; prepare: (w: SimulatedWorld) => void; fullClone?: boolean }) {
    const serial = `VM-FC${String(++n).padStart(3, '0')}`;
    const world = await harness.h.world({}, opts.env);
    opts.prepare(world);
    const taskQueue = `faults-${serial}`;
    return harness.h.withWorker(world, taskQueue, async () => {
      const { handle, waitForStatus } = await requestDriver(harness.h.env.client, taskQueue).startApproved(await harness.h.request(serial, { fullClone: opts.fullClone }));
      const record: RequestRecord = await waitForStatus(['Fulfilled', 'Failed'], { timeoutMs: 120_000 });
      const vms = world.pve.dump().vms.filter((v) => String(v.config.description ?? '').includes(serial) || v.lock === 'clone');
      if (record.status === 'Fulfilled') {
        await handle.executeUpdate(completeUpdate, { args: [{ by: 'admin' }] });
        await handle.result();
      }
      return { serial, record, vms, world };
    });
  }

  test('lock timeout on the VM config: retried, the build completes', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const { record } = await build({ env: { PVE_VMID_RANGE: '20000-20000' }, prepare: (w) => w.pve.faults.set({ lockTimeout: { vmid: 20000, times: 2 } }) });
    assert.equal(record.status, 'Fulfilled', record.build?.error);
    assert.equal(record.device.vmid, 20000);
  });

  test('tasks that end WARNINGS: n are successes: the build completes', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const { record } = await build({
      prepare: (w) => {
        w.pve.faults.set({ taskWarnings: { type: 'qmclone', count: 1, times: 1 } });
        w.pve.faults.set({ taskWarnings: { type: 'qmstart', count: 2, times: 1 } });
      },
    });
    assert.equal(record.status, 'Fulfilled', record.build?.error);
  });

  test('nextid race: the VMID is taken by a concurrent client; another is reserved and the build completes', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const { record } = await build({ prepare: (w) => w.pve.faults.set({ nextidRace: { times: 1 } }) });
    assert.equal(record.status, 'Fulfilled', record.build?.error);
    assert.ok(
      record.build?.log.some((l) => /was taken by a concurrent clone; reserving another/.test(l.message)),
      'the log says why the VMID changed',
    );
  });

  test('the only allowed node is offline: the build fails at once naming the nodes and the setting', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const { record, vms } = await build({ env: { PVE_NODE_SELECTOR: 'pve2' }, prepare: (w) => w.pve.faults.set({ nodeOffline: { node: 'pve2' } }) });
    assert.equal(record.status, 'Failed');
    assert.equal(record.build?.stage, 'choosing-node');
    assert.match(record.build?.error ?? '', /pve2 \(offline\)/);
    assert.match(record.build?.error ?? '', /PVE_NODE_SELECTOR/);
    assert.equal(vms.length, 0);
  });

  test('an offline node is avoided: the build lands on an online one', async (t) => {
    // (pve1 holds the template: with it down no clone can start — a real constraint, retried until it is back.)
    if (harness.skipped) return t.skip(harness.skipped);
    const { record } = await build({ prepare: (w) => w.pve.faults.set({ nodeOffline: { node: 'pve3' } }) });
    assert.equal(record.status, 'Fulfilled', record.build?.error);
    assert.notEqual(record.device.node, 'pve3');
  });

  test('storage full before a full clone: refused at placement with the shortfall, nothing cloned', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const { record, vms } = await build({ fullClone: true, prepare: (w) => w.pve.faults.set({ noSpace: { storage: 'ceph' } }) });
    assert.equal(record.status, 'Failed');
    assert.equal(record.build?.stage, 'choosing-node');
    assert.match(record.build?.error ?? '', /0 MiB free < 4\.0 GiB needed/);
    assert.equal(vms.length, 0);
  });

  test('storage that fills up during the clone: the clone task fails with what Proxmox said, nothing left', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const error = "clone failed: rbd create 'vm-10001-disk-0' error: rbd: create error: (28) No space left on device";
    const { record, vms } = await build({ fullClone: true, prepare: (w) => w.pve.faults.set({ taskFailure: { type: 'qmclone', error } }) });
    assert.equal(record.status, 'Failed');
    assert.equal(record.build?.stage, 'cloning');
    assert.match(record.build?.error ?? '', /No space left on device/);
    assert.equal(vms.length, 0);
  });

  test('a clone whose Proxmox worker dies leaves a stale lock: the build fails and names the root command to run', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const { record, vms } = await build({ prepare: (w) => w.pve.faults.set({ workerKilled: { taskType: 'qmclone', times: 1 } }) });
    assert.equal(record.status, 'Failed');
    assert.match(record.build?.error ?? '', /unexpected status/);
    assert.equal(record.build?.leftovers.length, 1, 'the stale VM is reported, not silently kept');
    assert.ok(
      record.build?.log.some((l) => /cannot see it.*qm unlock/.test(l.message)),
      JSON.stringify(record.build?.log.slice(-3)),
    );
    assert.equal(vms.length, 1, 'the half-made VM is still there, as reported');
  });
});
