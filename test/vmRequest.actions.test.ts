import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type { temporal } from '@temporalio/proto';
import type { SimulatedWorld } from '../src/simulators/world';
import { completeUpdate } from '../src/contracts/messages';
import { completionWorkflowId, buildWorkflowId } from '../src/contracts/workflowIds';
import { RequestStatusKey, SerialKey } from '../src/contracts/searchAttributes';
import { billableActions, totalOf } from '../bench/billableActions';
import { useWorkflowHarness } from './support/workflowHarness';
import { requestDriver } from './support/requestDriver';

type History = temporal.api.history.v1.IHistory;

/**
 * What a request lifecycle costs on Temporal (issue 29), read from the histories of one run as the API starts it:
 * each cut is a fact about the events, and the whole stays within the billable Actions docs/performance.md states.
 */
describe('vmRequest: billable Actions of one lifecycle', () => {
  const harness = useWorkflowHarness();
  let world: SimulatedWorld;

  before(async () => {
    if (!harness.skipped) world = await harness.h.world();
  });

  /** The upserts pveflow makes (the SDK's own TemporalChangeVersion upserts, one per patch, are not billed). */
  const upserts = (h: History) => (h.events ?? []).filter((e) => Object.keys(e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields ?? {}).some((k) => k !== 'TemporalChangeVersion'));
  const activities = (h: History) => (h.events ?? []).flatMap((e) => (e.activityTaskScheduledEventAttributes ? [String(e.activityTaskScheduledEventAttributes.activityType?.name)] : []));
  const startAttributes = (h: History) => Object.keys(h.events?.[0]?.workflowExecutionStartedEventAttributes?.searchAttributes?.indexedFields ?? {});

  test('started with its search attributes, published once per task, one VPN step, no HA step without HA, the key shredded locally', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const serial = 'VM-AC001';
    await harness.h.withWorker(world, `ac-${serial}`, async () => {
      const { handle, approve, waitForStatus } = await requestDriver(harness.h.env.client, `ac-${serial}`).startPending(await harness.h.request(serial, { diskGiB: 10 }));
      // Findable as Pending from its start, though it upserts nothing at its start.
      const described = await handle.describe();
      assert.equal(described.typedSearchAttributes.get(SerialKey), serial);
      assert.equal(described.typedSearchAttributes.get(RequestStatusKey), 'Pending');
      await approve('admin');
      await waitForStatus('Fulfilled');
      assert.equal((await handle.describe()).typedSearchAttributes.get(RequestStatusKey), 'Fulfilled');
      await handle.executeUpdate(completeUpdate, { args: [{ by: 'rita' }] });
      assert.equal((await handle.result()).status, 'Completed');
      assert.equal((await handle.describe()).typedSearchAttributes.get(RequestStatusKey), 'Completed');

      const request = await handle.fetchHistory();
      const build = await harness.h.env.client.workflow.getHandle(buildWorkflowId(serial, 1)).fetchHistory();
      const completion = await harness.h.env.client.workflow.getHandle(completionWorkflowId(serial)).fetchHistory();

      // The request: nothing upserted before the approval; the approval and the build's start in one upsert.
      const events = request.events ?? [];
      const approvedAt = events.findIndex((e) => e.workflowExecutionUpdateAcceptedEventAttributes);
      assert.ok(approvedAt > 0);
      assert.equal(upserts({ events: events.slice(0, approvedAt) }).length, 0, 'no upsert at the start');
      const approvalTaskEnd = events.findIndex((e, i) => i > approvedAt && e.workflowTaskScheduledEventAttributes);
      assert.equal(upserts({ events: events.slice(approvedAt, approvalTaskEnd) }).length, 1, 'Approved and Imaging in one upsert');
      // Imaging, Provisioning, Configuring, Fulfilled, Completing, Completed: one upsert each.
      assert.equal(upserts(request).length, 6);
      assert.deepEqual(activities(request), [], 'the credential key is shredded by a local activity');
      assert.ok(events.some((e) => e.markerRecordedEventAttributes?.markerName === 'core_local_activity'));

      // The build and the completion: their first attributes came with their start.
      assert.ok(startAttributes(build).includes('Serial') && startAttributes(build).includes('BuildStatus'));
      assert.equal(upserts(build).length, 2, 'Provisioning (its VM) and the end');
      assert.ok(activities(build).includes('joinVpn'));
      assert.ok(!activities(build).includes('waitForPeer') && !activities(build).includes('grantVpnAccess'));
      assert.ok(startAttributes(completion).includes('Serial'));
      assert.equal(upserts(completion).length, 0);
      assert.ok(!activities(completion).includes('removeFromHa'), 'the build made no HA resource');
      assert.deepEqual(activities(completion), ['shutdownVm', 'destroyVm', 'removeSnippet', 'revokeVpnAccess']);

      // 51 before issue 29's cuts, 42 after the first ones; the coordinator's share (3 signals) is counted apart.
      const total = totalOf(billableActions(request)) + totalOf(billableActions(build)) + totalOf(billableActions(completion));
      assert.ok(total <= 32, `the request, its build and its completion cost ${total} Actions`);
    });
  });
});
