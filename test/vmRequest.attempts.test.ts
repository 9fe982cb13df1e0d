import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { completeUpdate, rebuildUpdate } from '../src/contracts/messages';
import type { RequestRecord } from '../src/contracts/types';
import { useWorkflowHarness } from './support/workflowHarness';
import { requestDriver } from './support/requestDriver';

/**
 * The record keeps every build attempt (the last few): a rebuild no longer replaces the failed attempt's log, its
 * node, its VM and its build time; they stay beside the new attempt's. On the time-skipping server, the real
 * activities against the simulators.
 */

describe('vmRequest: one record per build attempt', () => {
  const harness = useWorkflowHarness();

  test('a rebuild keeps attempt 1 (its log, node, VM and build time) beside attempt 2', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const serial = 'VM-AT001';
    const taskQueue = `attempts-${serial}`;
    const error = 'start failed: QEMU exited with code 1';
    const world = await harness.h.world();
    // The VM's first start fails once, after it was cloned and placed: attempt 1 knows its node and VM.
    world.pve.faults.set({ taskFailure: { type: 'qmstart', error } });
    await harness.h.withWorker(world, taskQueue, async () => {
      const driven = await requestDriver(harness.h.env.client, taskQueue).startApproved(await harness.h.request(serial));
      const { handle } = driven;
      const status = (s: RequestRecord['status']) => driven.waitForStatus(s);
      const failed = await status('Failed');
      const first = failed.build!;
      assert.equal(first.attempt, 1);
      assert.equal(first.state, 'failed');
      assert.match(first.error ?? '', /QEMU exited/);
      assert.ok(first.node && first.vmid, `attempt 1 names its node and VM: ${JSON.stringify({ node: first.node, vmid: first.vmid })}`);
      assert.ok(first.startedAt && first.endedAt && first.endedAt >= first.startedAt, 'attempt 1 has its build time');
      assert.equal(typeof first.durationSeconds, 'number');
      assert.ok(
        first.log.some((l) => l.message.includes(`VM ${first.vmid} cloned on ${first.node}`)),
        'attempt 1 keeps its own log',
      );

      await handle.executeUpdate(rebuildUpdate, { args: [{ by: 'admin' }] });
      const fulfilled = await status('Fulfilled');
      assert.equal(fulfilled.build?.attempt, 2);
      assert.equal(fulfilled.build?.state, 'completed');
      assert.equal(fulfilled.build?.node, fulfilled.device.node);
      assert.equal(fulfilled.build?.vmid, fulfilled.device.vmid);
      assert.ok(fulfilled.build?.durationSeconds !== undefined);
      // Attempt 1 is still there, unchanged, beside attempt 2.
      assert.deepEqual(fulfilled.previousBuilds, [first]);
      assert.ok(fulfilled.build!.log.some((l) => l.stage === 'ready'));
      assert.ok(!fulfilled.build!.log.some((l) => l.message.includes('QEMU exited')), "attempt 2's log is its own");

      await handle.executeUpdate(completeUpdate, { args: [{ by: 'admin' }] });
      const done = await handle.result();
      assert.equal(done.status, 'Completed');
      assert.deepEqual(
        done.previousBuilds?.map((b) => b.attempt),
        [1],
      );
    });
  });
  test('a failed request nobody rebuilds or completes is cleaned up when its period ends, and holds nothing after', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const serial = 'VM-AT002';
    const taskQueue = `attempts-${serial}`;
    const world = await harness.h.world();
    world.pve.faults.set({ taskFailure: { type: 'qmstart', error: 'start failed: QEMU exited with code 1' } });
    // On the dev server, in real time: a period that ends 20 s from now (time skipping would wait on what the first
    // test's coordinators left on their task queue with no worker).
    const server = await harness.h.localEnv();
    const now = Date.now();
    const period = { start: new Date(now - 60_000).toISOString(), end: new Date(now + 20_000).toISOString() };
    await harness.h.withWorker(
      world,
      taskQueue,
      async () => {
        const driven = await requestDriver(server.client, taskQueue).startApproved(await harness.h.request(serial, { period }, server));
        const failed = await driven.waitForStatus('Failed');
        assert.equal(failed.build?.state, 'failed');
        // Nobody acts: the period ends, and the request ends by itself.
        const done = await driven.handle.result();
        assert.equal(done.status, 'Completed');
        assert.ok(
          done.timeline.some((e) => e.event === 'the period ended'),
          JSON.stringify(done.timeline.map((e) => e.event)),
        );
        assert.deepEqual(done.leftovers, []);
        assert.equal(done.build?.state, 'failed', 'the failed attempt stays on the record');
        assert.ok(!world.pve.dump().vms.some((v) => String(v.config.description ?? '').includes(serial)), 'no VM of the request is left');
      },
      server,
    );
  });
});
