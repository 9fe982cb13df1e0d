import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { completeUpdate } from '../src/contracts/messages';
import type { RequestRecord } from '../src/contracts/types';
import { useWorkflowHarness } from './support/workflowHarness';
import { requestDriver } from './support/requestDriver';

/**
 * A failed build whose undo could not destroy its VM leaves that VM to the request: the completion must destroy it
 * (issue 18), not end "nothing left behind" while the VM still runs up the cluster's bill.
 */

describe("a failed build's leftovers", () => {
  const harness = useWorkflowHarness();

  test('the VM a failed build could not destroy is destroyed at completion', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const serial = 'VM-LO001';
    const world = await harness.h.world();
    // The build fails configuring its VM; its undo's destroy is refused once (a 501 is not retried).
    world.pve.faults.set({ taskFailure: { type: 'qmconfig', error: 'injected: cloud-init drive could not be regenerated', times: 1 } });
    world.pve.faults.set({ errorRate: { rate: 1, status: 501, message: 'Method not implemented', route: 'DELETE /nodes/{node}/qemu/{vmid}', times: 1 } });
    const taskQueue = `leftovers-${serial}`;
    await harness.h.withWorker(world, taskQueue, async () => {
      const { handle, waitForStatus } = await requestDriver(harness.h.env.client, taskQueue).startApproved(await harness.h.request(serial));
      const failed: RequestRecord = await waitForStatus('Failed', { timeoutMs: 120_000 });
      const ours = () => world.pve.dump().vms.filter((v) => String(v.config.description ?? '').includes(serial));
      assert.equal(failed.build?.stage, 'configuring', failed.build?.error);
      assert.equal(ours().length, 1, 'the undo could not destroy the VM');
      assert.deepEqual(failed.build?.leftovers, [`VM ${ours()[0]!.vmid}`]);

      await handle.executeUpdate(completeUpdate, { args: [{ by: 'admin' }] });
      const done = await handle.result();
      assert.deepEqual(ours(), [], 'completion destroyed the VM the build left');
      assert.deepEqual(done.leftovers, []);
      assert.match(done.timeline.at(-1)!.event, /nothing left behind/);
    });
  });
});
