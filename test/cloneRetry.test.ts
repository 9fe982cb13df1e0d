import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { SimulatedWorld } from '../src/simulators/world';
import { buildStatusQuery, cancelUpdate, completeUpdate } from '../src/contracts/messages';
import type { RequestRecord } from '../src/contracts/types';
import { useWorkflowHarness } from './support/workflowHarness';
import { waitFor } from './support/waitFor';
import { requestDriver } from './support/requestDriver';

/**
 * The clone-retry leak (issue 18): Proxmox starts the clone, but the attempt that asked for it fails before it can
 * heartbeat the task's UPID. Here the answer to the clone POST is lost (the simulator's `slowSync` fault: pveproxy
 * answers 596 while the clone goes on), which leaves the retry exactly where a worker killed after the POST leaves
 * it: the VMID "already exists", the VM is outside the pool (Proxmox adds it only when the clone ends) and no UPID
 * was recorded. The retry must find that clone in the node's task list and adopt its VM; a cancel in that window must
 * still destroy it.
 */
const CLONE_ROUTE = 'POST /nodes/{node}/qemu/{vmid}/clone';

describe('a clone retry after the clone request was lost', () => {
  const harness = useWorkflowHarness();
  let n = 0;

  /** Every VM of `serial` in the simulated cluster, and every half-made clone (whose description is not written yet). */
  const vmsOf = (world: SimulatedWorld, serial: string) => world.pve.dump().vms.filter((v) => String(v.config.description ?? '').includes(serial) || v.lock === 'clone');

  async function start(serial: string, taskQueue: string, server = harness.h.env) {
    return requestDriver(server.client, taskQueue).startApproved(await harness.h.request(serial, {}, server));
  }

  test('the retry adopts the clone its predecessor started: exactly one VM, and none after completion', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const serial = `VM-CR${String(++n).padStart(3, '0')}`;
    // The clone outlasts the lost answer and the retry's backoff: the retry meets it still copying.
    const world = await harness.h.world({ proxyTimeoutMs: 200, linkedCloneMs: 6_000 });
    world.pve.faults.set({ slowSync: { route: CLONE_ROUTE, times: 1 } });
    await harness.h.withWorker(world, `clone-retry-${serial}`, async () => {
      const { handle, waitForStatus } = await start(serial, `clone-retry-${serial}`);
      const record: RequestRecord = await waitForStatus(['Fulfilled', 'Failed'], { timeoutMs: 120_000 });
      assert.equal(record.status, 'Fulfilled', record.build?.error);
      assert.equal(world.pve.callCounts()[CLONE_ROUTE], 2, 'the lost clone request, and the retry that found its VMID existing');
      const vms = vmsOf(world, serial);
      assert.deepEqual(
        vms.map((v) => v.vmid),
        [record.device.vmid],
        'one VM, the one the request records',
      );
      assert.ok(!record.build?.log.some((l) => /was taken/.test(l.message)), 'the build did not move to another VMID');

      await handle.executeUpdate(completeUpdate, { args: [{ by: 'admin' }] });
      const done = await handle.result();
      assert.deepEqual(done.leftovers, []);
      assert.deepEqual(vmsOf(world, serial), []);
    });
  });

  test('a cancel while the lost clone still copies leaves no VM behind', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const serial = `VM-CR${String(++n).padStart(3, '0')}`;
    // The answer is lost only after the cancel has arrived: the attempt fails (596) with the cancel requested, so no
    // retry runs, and the build's undo meets a VM Proxmox is still cloning outside the pool.
    const world = await harness.h.world({ proxyTimeoutMs: 1_500, linkedCloneMs: 4_000 });
    world.pve.faults.set({ slowSync: { route: CLONE_ROUTE, times: 1 } });
    // A real dev server: the time-skipping one drops an activity whose attempt fails after its cancel was requested.
    const server = await harness.h.localEnv();
    await harness.h.withWorker(
      world,
      `clone-cancel-${serial}`,
      async () => {
        const { handle, record: recordNow } = await start(serial, `clone-cancel-${serial}`, server);
        await waitFor('the clone running in Proxmox', async () => (world.pve.dump().tasks.some((task) => task.type === 'qmclone' && task.status === 'running') ? true : undefined), 60_000);
        await handle.executeUpdate(cancelUpdate, { args: [{ by: 'admin' }] });
        let last: RequestRecord | undefined;
        const record: RequestRecord = await waitFor(
          `${serial} cancelled`,
          async () => {
            last = await recordNow();
            return last.status === 'Cancelled' ? last : undefined;
          },
          120_000,
        ).catch(async (err: Error) => {
          const build = server.client.workflow.getHandle(`vm-build-${serial}-1`);
          throw new Error(`${err.message}: ${JSON.stringify({ status: last?.status, build: await build.query(buildStatusQuery) })}`);
        });
        assert.deepEqual(record.build?.leftovers, [], JSON.stringify(record.build?.log.slice(-4)));
        assert.deepEqual(vmsOf(world, serial), [], 'the clone was destroyed once it ended');
        assert.ok(!world.pve.dump().tasks.some((task) => task.status === 'running'), 'nothing still running');
        await handle.executeUpdate(completeUpdate, { args: [{ by: 'admin' }] });
        await handle.result();
      },
      server,
    );
  });
});
