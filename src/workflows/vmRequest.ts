import { CancellationScope, allHandlersFinished, condition, isCancellation, patched, upsertSearchAttributes } from '@temporalio/workflow';
import { autoApprovalReason } from '../domain/requestPolicyRules';
import type { RequestRecord, VmRequestInput } from '../contracts/types';
import { buildOnce, loseVm } from './request/buildAttempt';
import { cleanUp } from './request/completion';
import { shredCredentials } from './request/credentials';
import { holdLease } from './request/lease';
import { setOperationHandlers } from './request/operations';
import { requestSearchAttributes } from '../contracts/searchAttributes';
import { VmRequest } from './request/request';
import { PATCHES } from './patches';

const HOUR = 3600_000;

/**
 * One VM request from submission to cleanup: the system of record for it. An admin approves (or the policy does;
 * unapproved requests expire); at the period's start the VM is built; it is fulfilled until the period ends (which
 * `extend` moves) or someone completes it early; then it is cleaned up. A failed or cancelled build, or a VM that
 * vanished from the cluster, waits for a rebuild or a completion. Which action is allowed when: requestLifecycle.ts.
 * The request itself, its state and its messages (approve, reject, rebuild, complete, cancel, extend, reveal):
 * request/request.ts; each step's detail beside it in request/ (buildAttempt, lease, operations, drift, credentials,
 * completion, timeline).
 */
export async function vmRequest(input: VmRequestInput): Promise<RequestRecord> {
  const state = new VmRequest(input, new Date().toISOString());
  const { record, policy } = state;
  // The record is complete before any handler exists: an approve delivered with the very first workflow task
  // runs as soon as its handler is set, and must find (and change) the submitted state, not be overwritten by it.
  // From revision 2 the starter gave the submitted request's search attributes: they are not upserted again.
  if (!input.resumed && !state.revisionAtLeast(2)) upsertSearchAttributes(requestSearchAttributes(record));
  state.register();
  // Day-2 operations on the built VM (power, reconfigure, snapshots, migrate): request/operations.ts.
  setOperationHandlers(state);

  if (!input.resumed) {
    const auto = autoApprovalReason(policy, record.request);
    if (auto) state.move('approve', auto, 'policy');
    const decided = await condition(() => record.status !== 'Pending', policy.pendingExpiryHours * HOUR);
    if (!decided) state.move('expired', `not approved within ${policy.pendingExpiryHours} h; nothing was built`);
    if (record.status !== 'Approved') return finish();
  }

  try {
    if (record.status !== 'Fulfilled') await untilPeriodStart();
    for (;;) {
      if (completionAsked()) break;
      if (record.status !== 'Fulfilled' && (await buildOnce(state)) !== 'fulfilled') {
        if ((await state.awaitRebuildOrCompletion()) === 'periodEnded') break;
        await rebuildAtPeriodStart();
        continue;
      }
      await holdLease(state);
      if (completionAsked() || !state.pending('vmVanished')) break;
      loseVm(state);
      await shredCredentials(state);
      if ((await state.awaitRebuildOrCompletion()) === 'periodEnded') break;
      await rebuildAtPeriodStart();
    }
  } catch (err) {
    // The request itself was cancelled (Temporal UI, `temporal workflow cancel`): clean up, then end as cancelled.
    if (!isCancellation(err)) throw err;
    state.cancelledFromOutside();
    await CancellationScope.nonCancellable(() => cleanUp(state, 'the request was cancelled'));
    throw err;
  }
  await cleanUp(state, completionAsked() ? 'completing on request' : 'the period ended');
  return finish();

  /** The VM is built when the period starts, not before (a durable timer: it survives any restart). */
  async function untilPeriodStart(): Promise<void> {
    const untilStart = Date.parse(record.request.period.start) - Date.now();
    if (untilStart > 0) await condition(() => completionAsked() || state.pending('cancel') !== undefined, untilStart);
  }

  /** A rebuild queued before the period's start (a build cancelled ahead of it) waits for the start, as the first build did. */
  async function rebuildAtPeriodStart(): Promise<void> {
    if (record.status === 'Approved' && state.periodAhead() && patched(PATCHES.rebuildWaitsForPeriod)) await untilPeriodStart();
  }

  function completionAsked(): boolean {
    return state.pending('complete') !== undefined;
  }

  async function finish(): Promise<RequestRecord> {
    await condition(allHandlersFinished);
    return record;
  }
}
