import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { completeUpdate, extendUpdate, powerUpdate } from '../src/contracts/messages';
import type { OperationResult } from '../src/contracts/vmOperations';
import { defaultRequestPolicy } from '../src/domain/requestPolicyRules';
import type { SimulatedWorld } from '../src/simulators/world';
import { useWorkflowHarness } from './support/workflowHarness';
import { requestDriver, type DrivenRequest } from './support/requestDriver';
import { waitFor } from './support/waitFor';

/**
 * Finding 5 of issue 27: ending is one state. From the moment the period ends (or a completion is accepted) the
 * request is Completing to every caller — a day-2 operation and an extend are refused with 409 naming that status —
 * and the cleanup waits for the operation already running rather than racing it. On a dev server (real time): the
 * guest takes 4 s to shut down, so the period ends, or a completion arrives, while a shutdown runs.
 */
const SHUTDOWN_MS = 4_000;

describe('a request that is ending (dev server)', () => {
  const harness = useWorkflowHarness();
  let world: SimulatedWorld;
  let ids = 0;
  const op = (action: 'shutdown' | 'start' | 'reboot') => ({ id: `end-${++ids}`, by: 'rita@acme.example', role: 'requester' as const, action, confirmReboot: true });

  async function refusal(call: Promise<unknown>): Promise<string> {
    const err = await call.then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowUpdateFailedError, `expected a refusal, got ${String(err)}`);
    return err.cause?.message ?? err.message;
  }

  async function fulfilledRequest(serial: string, queue: string): Promise<{ r: DrivenRequest; vmid: number }> {
    const server = await harness.h.localEnv();
    const r = await requestDriver(server.client, queue).startApproved(await harness.h.request(serial, {}, server));
    const record = await r.waitForStatus('Fulfilled', { timeoutMs: 60_000 });
    return { r, vmid: record.device.vmid! };
  }

  test('once the period has ended, extend and day-2 operations are refused as Completing; the cleanup waits for the running shutdown', { timeout: 180_000 }, async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    world = await harness.h.world({ shutdownMs: SHUTDOWN_MS });
    const server = await harness.h.localEnv();
    const queue = 'ending-period';
    await harness.h.withWorker(
      world,
      queue,
      async () => {
        const { r, vmid } = await fulfilledRequest('VM-END01', queue);
        const shutdown = r.handle.executeUpdate(powerUpdate, { args: [op('shutdown')] });
        await waitFor('the shutdown running', async () => ((await r.record()).operations ?? []).some((o) => o.state === 'running') || undefined, 10_000, 50);
        // The period ends while the shutdown runs.
        const end = Date.now() + 800;
        await r.handle.executeUpdate(extendUpdate, { args: [{ by: 'rita@acme.example', newEnd: new Date(end).toISOString() }] });
        await sleep(Math.max(0, end - Date.now()) + 300);

        const extend = await refusal(r.handle.executeUpdate(extendUpdate, { args: [{ by: 'rita@acme.example', newEnd: new Date(Date.now() + 86_400_000).toISOString() }] }));
        assert.match(extend, /it is Completing/);
        assert.match(extend, /period ended/);
        const start = await refusal(r.handle.executeUpdate(powerUpdate, { args: [op('start')] }));
        assert.match(start, /it is Completing/);

        // The shutdown under way was not cut short: it finished, then the cleanup ran.
        const done: OperationResult = await shutdown;
        assert.equal(done.operation.state, 'succeeded');
        const ended = await r.handle.result();
        assert.equal(ended.status, 'Completed');
        const events = ended.timeline.map((e) => e.event);
        const shutdownAt = events.findIndex((e) => e.startsWith('power shutdown: '));
        const cleanupAt = events.indexOf('the period ended');
        assert.ok(shutdownAt >= 0 && cleanupAt > shutdownAt, `the shutdown ended before the cleanup began: ${events.join(' | ')}`);
        await waitFor(`VM ${vmid} removed`, async () => !world.pve.dump().vms.some((v) => v.vmid === vmid) || undefined, 30_000);
      },
      server,
    );
  });

  test('once a completion is accepted, day-2 operations and extend are refused as Completing', { timeout: 180_000 }, async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    world = await harness.h.world({ shutdownMs: SHUTDOWN_MS });
    const server = await harness.h.localEnv();
    const queue = 'ending-complete';
    await harness.h.withWorker(
      world,
      queue,
      async () => {
        const { r } = await fulfilledRequest('VM-END02', queue);
        const shutdown = r.handle.executeUpdate(powerUpdate, { args: [op('shutdown')] });
        await waitFor('the shutdown running', async () => ((await r.record()).operations ?? []).some((o) => o.state === 'running') || undefined, 10_000, 50);
        const completion = r.handle.executeUpdate(completeUpdate, { args: [{ by: 'rita@acme.example' }] });
        await waitFor('the completion asked', async () => (await r.record()).timeline.some((e) => e.event === 'completion requested') || undefined, 10_000, 50);

        const reboot = await refusal(r.handle.executeUpdate(powerUpdate, { args: [op('reboot')] }));
        assert.match(reboot, /it is Completing/);
        assert.match(reboot, /completion has been asked for/);
        const extend = await refusal(r.handle.executeUpdate(extendUpdate, { args: [{ by: 'rita@acme.example', newEnd: new Date(Date.now() + 86_400_000).toISOString() }] }));
        assert.match(extend, /it is Completing/);

        assert.equal((await shutdown).operation.state, 'succeeded');
        assert.equal((await completion).status, 'Completing');
        assert.equal((await r.handle.result()).status, 'Completed');
      },
      server,
    );
  });

  test('the cleanup gives the guest REQUEST_SHUTDOWN_TIMEOUT_S to shut down, not a fixed 120 s', { timeout: 180_000 }, async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    // A guest that takes a minute to shut down; the deployment gives it 2 s before it is stopped.
    world = await harness.h.world({ shutdownMs: 60_000 });
    const server = await harness.h.localEnv();
    const queue = 'ending-timeout';
    await harness.h.withWorker(
      world,
      queue,
      async () => {
        const driver = requestDriver(server.client, queue);
        const r = await driver.startApproved(await harness.h.request('VM-END03', {}, server), { policy: { ...defaultRequestPolicy, shutdownTimeoutSeconds: 2 } });
        const { device } = await r.waitForStatus('Fulfilled', { timeoutMs: 60_000 });
        const started = Date.now();
        await r.handle.executeUpdate(completeUpdate, { args: [{ by: 'rita@acme.example' }] });
        assert.equal((await r.handle.result()).status, 'Completed');
        const took = Date.now() - started;
        assert.ok(took < 40_000, `the cleanup took ${took} ms: it waited for the guest past the 2 s the policy gives`);
        assert.ok(!world.pve.dump().vms.some((v) => v.vmid === device.vmid));
      },
      server,
    );
  });
});
