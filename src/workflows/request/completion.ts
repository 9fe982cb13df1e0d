import { ParentClosePolicy, condition, executeChild, patched } from '@temporalio/workflow';
import { shutdownTimeoutOf } from '../../domain/requestPolicyRules';
import { PATCHES } from '../patches';
import { completionWorkflowId } from '../../contracts/workflowIds';
import { atStart, completionSearchAttributes } from '../../contracts/searchAttributes';
import { vmCompletion } from '../vmCompletion';
import { forgetCredentials, shredCredentials } from './credentials';
import { runningOperation } from './operations';
import type { VmRequest } from './request';
import { forgetVm } from './timeline';

/** The end of the request: the completion runbook as a child, and what it could not remove on the record. */
export async function cleanUp(state: VmRequest, why: string): Promise<void> {
  const { serial, record } = state;
  // A day-2 operation under way finishes first: the completion must not shut down a VM in mid-migration.
  await condition(() => !runningOperation(record));
  const cancelled = record.status === 'Cancelled';
  forgetCredentials(state);
  await shredCredentials(state);
  // From here the request is on its way out: a waiting `complete` answers with it Completing.
  state.leave(why);
  const completion = await executeChild(vmCompletion, {
    workflowId: completionWorkflowId(serial),
    args: [
      {
        serial,
        name: record.request.name,
        vmid: record.device.vmid,
        node: record.device.node,
        ...(record.leftoverVms?.length ? { leftoverVms: record.leftoverVms } : {}),
        ...(state.vmHaResource === false ? { haResource: false } : {}),
        // The deployment's REQUEST_SHUTDOWN_TIMEOUT_S, as the day-2 shutdown has it (it was a fixed 120 s here).
        ...(patched(PATCHES.cleanupShutdownTimeout) ? { shutdownTimeoutSeconds: shutdownTimeoutOf(state.policy) } : {}),
      },
    ],
    parentClosePolicy: ParentClosePolicy.ABANDON,
    // Findable from its start: the completion need not upsert its serial (an Action fewer).
    typedSearchAttributes: atStart(completionSearchAttributes(serial)),
    staticSummary: `Cleanup of ${serial} (${record.request.name}, ${record.request.org})`,
  });
  record.leftovers = completion.leftovers;
  const outcome = completion.leftovers.length ? `left behind: ${completion.leftovers.join('; ')}` : 'nothing left behind';
  if (completion.vmDestroyed) forgetVm(state);
  state.move(cancelled ? 'cleanedUpAfterCancel' : 'cleanedUp', `${cancelled ? 'cancelled' : 'completed'}; ${outcome}`);
}
