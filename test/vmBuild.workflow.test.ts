import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, test } from 'node:test';
import type { PveTiming } from '../src/simulators/pve';
import type { SimulatedWorld } from '../src/simulators/world';
import { cancelUpdate, completeUpdate, rebuildUpdate } from '../src/contracts/messages';
import type { BuildStage } from '../src/contracts/types';
import { useWorkflowHarness } from './support/workflowHarness';
import { requestDriver, type DrivenRequest } from './support/requestDriver';

/**
 * The build saga on a real Temporal server against the simulators: each failure ends `failed` with the undo done and
 * a message an operator can act on; a cancel (API or Temporal UI) at any stage leaves nothing behind.
 */

describe('vmBuild: failures and cancellation', () => {
  const harness = useWorkflowHarness();
  let n = 0;

  /** One request in its own world: approve it and hand the test a way to watch it. */
  async function approvedRequest(opts: { timing?: Partial<PveTiming>; env?: Record<string, string>; prepare?: (w: SimulatedWorld) => void }) {
    const serial = `VM-FB${String(++n).padStart(3, '0')}`;
    const world = await harness.h.world(opts.timing, opts.env);
    opts.prepare?.(world);
    const taskQueue = `build-${serial}`;
    return {
      serial,
      world,
      run<T>(fn: (request: DrivenRequest) => Promise<T>) {
        return harness.h.withWorker(world, taskQueue, async () => fn(await requestDriver(harness.h.env.client, taskQueue).startApproved(await harness.h.request(serial))));
      },
    };
  }

  /** Nothing of the request is left anywhere: VM, snippet, NetBird objects. */
  function assertNothingLeft(world: SimulatedWorld, serial: string) {
    const slug = serial.toLowerCase();
    assert.deepEqual(
      world.pve
        .dump()
        .vms.filter((v) => String(v.config.description ?? '').includes(serial) || String(v.name ?? '').includes(slug))
        .map((v) => v.vmid),
      [],
      'no VM left',
    );
    assert.deepEqual(
      readdirSync(harness.h.sshd.dir).filter((f) => f.includes(slug)),
      [],
      'no snippet left',
    );
    const nb = world.netbird.dump();
    assert.deepEqual(
      nb.groups.filter((g) => g.name.includes(serial)).map((g) => g.name),
      [],
      'no NetBird group left',
    );
    assert.deepEqual(
      nb.setupKeys.filter((k) => k.name.includes(serial)).map((k) => k.name),
      [],
      'no setup key left',
    );
    assert.deepEqual(
      nb.policies.filter((p) => p.name.includes(serial)).map((p) => p.name),
      [],
      'no policy left',
    );
    assert.deepEqual(
      nb.peers.filter((p) => p.name.includes(slug)).map((p) => p.name),
      [],
      'no peer left',
    );
  }

  test('a clone task that fails after HTTP 200 fails the build with what Proxmox logged; a rebuild then succeeds', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const error = "clone failed: copy failed: command '/usr/bin/qemu-img convert -p -n -f raw -O raw' failed: exit code 1";
    const r = await approvedRequest({ prepare: (w) => w.pve.faults.set({ taskFailure: { type: 'qmclone', error } }) });
    await r.run(async ({ handle, waitForStatus }) => {
      const failed = await waitForStatus('Failed');
      assert.equal(failed.build?.state, 'failed');
      assert.equal(failed.build?.stage, 'cloning');
      assert.match(failed.build?.error ?? '', /qemu-img convert/);
      assert.match(failed.build?.error ?? '', new RegExp(`request ${r.serial}`));
      assert.deepEqual(failed.build?.leftovers, []);
      assertNothingLeft(r.world, r.serial);

      await handle.executeUpdate(rebuildUpdate, { args: [{ by: 'admin' }] });
      const fulfilled = await waitForStatus('Fulfilled');
      assert.equal(fulfilled.build?.attempt, 2);
      assert.equal(fulfilled.build?.workflowId, `vm-build-${r.serial}-2`);
      await handle.executeUpdate(completeUpdate, { args: [{ by: 'admin' }] });
      assert.equal((await handle.result()).status, 'Completed');
      assertNothingLeft(r.world, r.serial);
    });
  });

  test('a missing template fails at once, naming the template and the setting to fix', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const r = await approvedRequest({ env: { PVE_TEMPLATE_VMID: '9999' } });
    await r.run(async ({ waitForStatus }) => {
      const failed = await waitForStatus('Failed');
      assert.match(failed.build?.error ?? '', /template VM 9999/);
      assert.match(failed.build?.error ?? '', /PVE_TEMPLATE_VMID/);
      assertNothingLeft(r.world, r.serial);
    });
  });

  test("a token without rights on the pool fails with Proxmox's permission message and what to grant", async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const r = await approvedRequest({ env: { PVE_POOL: 'not-our-pool' } });
    await r.run(async ({ waitForStatus }) => {
      const failed = await waitForStatus('Failed');
      assert.match(failed.build?.error ?? '', /Permission check failed/);
      assert.match(failed.build?.error ?? '', /pool not-our-pool does not exist: create it \(pvesh create \/pools --poolid not-our-pool\) or set PVE_POOL/);
      assertNothingLeft(r.world, r.serial);
    });
  });

  test('a guest agent that never answers ends the bounded wait; the VM is destroyed', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const r = await approvedRequest({ timing: { agentStartMs: 3_600_000 }, env: { GUEST_IP_WAIT_S: '1' } });
    await r.run(async ({ waitForStatus }) => {
      const failed = await waitForStatus('Failed');
      assert.equal(failed.build?.stage, 'waiting-for-ip');
      assert.match(failed.build?.error ?? '', /reported no IPv4 within 1 s/);
      assert.match(failed.build?.error ?? '', /qemu-guest-agent/);
      assertNothingLeft(r.world, r.serial);
    });
  });

  test('cancel during the clone leaves no VM behind', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const r = await approvedRequest({ timing: { linkedCloneMs: 2_000 } });
    await r.run(async ({ handle, waitForBuildStage, waitForStatus }) => {
      await waitForBuildStage('cloning');
      await handle.executeUpdate(cancelUpdate, { args: [{ by: 'admin' }] });
      const cancelled = await waitForStatus('Cancelled');
      assert.equal(cancelled.build?.state, 'cancelled');
      assert.deepEqual(cancelled.build?.leftovers, []);
      assertNothingLeft(r.world, r.serial);
    });
  });

  test('cancel while waiting for the guest IP removes the VM, its snippet and the NetBird objects', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const r = await approvedRequest({ timing: { agentStartMs: 3_600_000 } });
    await r.run(async ({ handle, waitForBuildStage, waitForStatus }) => {
      await waitForBuildStage('waiting-for-ip');
      await handle.executeUpdate(cancelUpdate, { args: [{ by: 'admin', note: 'wrong template' }] });
      await waitForStatus('Cancelled');
      assertNothingLeft(r.world, r.serial);
      await handle.executeUpdate(completeUpdate, { args: [{ by: 'admin' }] });
      assert.equal((await handle.result()).status, 'Cancelled');
    });
  });

  // Every other stage, each held open long enough to cancel in it: what it and the stages before made is undone.
  const heldStages: Array<{ stage: BuildStage; timing?: Partial<PveTiming>; hold?: (w: SimulatedWorld) => void }> = [
    { stage: 'uploading-snippet', hold: (w) => w.netbird.faults.set({ latencyMs: 2_000 }) },
    { stage: 'configuring', timing: { configMs: 3_000 } },
    { stage: 'starting', timing: { startMs: 3_000 } },
    { stage: 'vpn-peer', hold: (w) => w.netbird.faults.set({ peersNeverRegister: true }) },
  ];
  for (const { stage, timing, hold } of heldStages) {
    test(`cancel during ${stage} leaves nothing behind`, async (t) => {
      if (harness.skipped) return t.skip(harness.skipped);
      const r = await approvedRequest({ timing, prepare: hold });
      await r.run(async ({ handle, waitForBuildStage: atStage, waitForStatus }) => {
        await atStage(stage);
        await handle.executeUpdate(cancelUpdate, { args: [{ by: 'admin' }] });
        const cancelled = await waitForStatus('Cancelled');
        assert.equal(cancelled.build?.state, 'cancelled');
        r.world.netbird.faults.reset();
        assertNothingLeft(r.world, r.serial);
      });
    });
  }

  test('cancelling the build from Temporal UI behaves like the API cancel', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const r = await approvedRequest({ timing: { agentStartMs: 3_600_000 } });
    await r.run(async ({ waitForBuildStage, waitForStatus }) => {
      await waitForBuildStage('waiting-for-ip');
      await harness.h.env.client.workflow.getHandle(`vm-build-${r.serial}-1`).cancel();
      const cancelled = await waitForStatus('Cancelled');
      assert.equal(cancelled.build?.state, 'cancelled');
      assert.ok(
        cancelled.build?.log.some((l) => l.message.startsWith('undone: VM')),
        'the log says what was undone',
      );
      assertNothingLeft(r.world, r.serial);
    });
  });

  test('a cancel that does not fit the state is refused with the reason', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const r = await approvedRequest({});
    await r.run(async ({ handle, waitForStatus }) => {
      await waitForStatus('Fulfilled');
      await assert.rejects(handle.executeUpdate(cancelUpdate, { args: [{ by: 'admin' }] }), (err: Error) => /cannot cancel request .*: it is Fulfilled/.test(String((err.cause as Error | undefined)?.message)));
      await handle.executeUpdate(completeUpdate, { args: [{ by: 'admin' }] });
      await handle.result();
    });
  });
});
