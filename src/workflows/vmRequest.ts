import { CancellationScope, allHandlersFinished, condition, isCancellation, patched, upsertSearchAttributes } from '@temporalio/workflow';
import { autoApprovalReason } from '../domain/requestPolicyRules';
import type { RequestRecord, VmRequestInput } from '../contracts/types';
import { buildOnce, loseVm } from './request/buildAttempt';
import { cleanUp } from './request/completion';
import { shredCredentials } from './request/credentials';
import { setRequestHandlers } from './request/handlers';
import { holdLease } from './request/lease';
import { setOperationHandlers } from './request/operations';
import { requestSearchAttributes } from '../contracts/searchAttributes';
import { attemptOf, periodAhead, requestStateOf, type RequestState } from './request/state';
import { PATCHES } from './patches';
import { move } from './request/timeline';

const HOUR = 3600_000;

/**
 * One VM request from submission to cleanup: the system of record for it. An admin approves (or the policy does;
 * unapproved requests expire); at the period's start the VM is built; it is fulfilled until the period ends (which
 * `extend` moves) or someone completes it early; then it is cleaned up. A failed or cancelled build, or a VM that
 * vanished from the cluster, waits for a rebuild or a completion. Which action is allowed when: requestLifecycle.ts;
 * each step's detail beside it in request/ (handlers, operations, buildAttempt, lease, drift, credentials, completion,
 * timeline).
 */
export async function vmRequest(input: VmRequestInput): Promise<RequestRecord> {
  const state = requestStateOf(input, new Date().toISOString());
  const { record, policy, asked } = state;
  // The record is complete before any handler exists: an approve delivered with the very first workflow task
  // runs as soon as its handler is set, and must find (and change) the submitted state, not be overwritten by it.
  if (!input.resumed) upsertSearchAttributes(requestSearchAttributes(record));
  setRequestHandlers(state);
  // Day-2 operations on the built VM (power, reconfigure, snapshots, migrate): request/operations.ts.
  setOperationHandlers(state);

  if (!input.resumed) {
    const auto = autoApprovalReason(policy, record.request);
    if (auto) move(state, 'approve', auto, 'policy');
    const decided = await condition(() => record.status !== 'Pending', policy.pendingExpiryHours * HOUR);
    if (!decided) move(state, 'expired', `not approved within ${policy.pendingExpiryHours} h; nothing was built`);
    if (record.status !== 'Approved') return finish();
  }

  try {
    if (record.status !== 'Fulfilled') await untilPeriodStart();
    for (;;) {
      if (asked.complete) break;
      if (record.status !== 'Fulfilled' && (await buildOnce(state)) !== 'fulfilled') {
        await waitForRebuildOrCompletion(state);
        await rebuildAtPeriodStart();
        continue;
      }
      await holdLease(state);
      if (asked.complete || !state.vmVanished) break;
      loseVm(state);
      await shredCredentials(state);
      await waitForRebuildOrCompletion(state);
      await rebuildAtPeriodStart();
    }
  } catch (err) {
    // The request itself was cancelled (Temporal UI, `temporal workflow cancel`): clean up, then end as cancelled.
    if (!isCancellation(err)) throw err;
    move(state, 'requestCancelled', 'the request workflow was cancelled; cleaning up');
    await CancellationScope.nonCancellable(() => cleanUp(state, 'the request was cancelled'));
    throw err;
  }
  await cleanUp(state, asked.complete ? 'completing on request' : 'the period ended');
  return finish();

  /** The VM is built when the period starts, not before (a durable timer: it survives any restart). */
  async function untilPeriodStart(): Promise<void> {
    const untilStart = Date.parse(record.request.period.start) - Date.now();
    if (untilStart > 0) await condition(() => asked.complete || asked.cancel, untilStart);
  }

  /** A rebuild queued before the period's start (a build cancelled ahead of it) waits for the start, as the first build did. */
  async function rebuildAtPeriodStart(): Promise<void> {
    if (record.status === 'Approved' && periodAhead(state) && patched(PATCHES.rebuildWaitsForPeriod)) await untilPeriodStart();
  }

  async function finish(): Promise<RequestRecord> {
    await condition(allHandlersFinished);
    return record;
  }
}

/** A failed or cancelled build, or a vanished VM: nothing happens until someone asks for a rebuild or a completion. */
async function waitForRebuildOrCompletion(state: RequestState): Promise<void> {
  await condition(() => state.asked.rebuild || state.asked.complete);
  if (state.asked.rebuild && !state.asked.complete) move(state, 'rebuild', `rebuild ${attemptOf(state) + 1} queued`);
}
