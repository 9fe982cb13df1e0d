import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { completeUpdate } from '../src/contracts/messages';
import { useWorkflowHarness } from './support/workflowHarness';
import { requestDriver } from './support/requestDriver';

/**
 * Cleanup within its heartbeat (issue 18): a revoke of NetBird access makes about eight calls, each of which may ride
 * out 429s. With NetBird slow and rate-limiting, one attempt outlasts the cleanup preset's 30 s heartbeat timeout; it
 * must still be the only attempt (no retry started beside a live one) and leave nothing behind. A real dev server: the
 * heartbeat timeout is about real time.
 */

describe('cleanup activities heartbeat', () => {
  const harness = useWorkflowHarness();

  test('a revoke against a slow NetBird answering 429 finishes in one attempt, nothing left', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const serial = 'VM-HB001';
    const server = await harness.h.localEnv();
    const world = await harness.h.world();
    await harness.h.withWorker(
      world,
      `heartbeat-${serial}`,
      async () => {
        const { handle, waitForStatus } = await requestDriver(server.client, `heartbeat-${serial}`).startApproved(await harness.h.request(serial, {}, server));
        await waitForStatus('Fulfilled', { timeoutMs: 120_000 });

        // Every call ~5 s, the first ones refused 429: the revoke's ~8 calls take well past 30 s.
        world.netbird.faults.set({ latencyMs: 5_000, failNextRequests: 3, failStatus: 429, retryAfterSeconds: 1 });
        await handle.executeUpdate(completeUpdate, { args: [{ by: 'admin' }] });
        const done = await handle.result();
        world.netbird.faults.reset();
        assert.deepEqual(done.leftovers, []);

        const history = await server.client.workflow.getHandle(`vm-completion-${serial}`).fetchHistory();
        const events = history.events ?? [];
        const scheduled = new Set(events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'revokeVpnAccess').map((e) => String(e.eventId)));
        const attempts = events.filter((e) => scheduled.has(String(e.activityTaskStartedEventAttributes?.scheduledEventId))).map((e) => e.activityTaskStartedEventAttributes?.attempt);
        assert.deepEqual(attempts, [1], 'one attempt: none timed out while still running');

        const nb = world.netbird.dump();
        assert.ok(!nb.groups.some((g) => g.name.includes(serial)), 'device group removed');
        assert.ok(!nb.policies.some((p) => p.name.includes(serial)), 'policy removed');
        assert.ok(!nb.setupKeys.some((k) => k.name.includes(serial)), 'setup key removed');
      },
      server,
    );
  });
});
