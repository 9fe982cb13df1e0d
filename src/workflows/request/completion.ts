import { ParentClosePolicy, executeChild } from '@temporalio/workflow';
import { completionWorkflowId } from '../../contracts/workflowIds';
import { vmCompletion } from '../vmCompletion';
import { forgetCredentials, shredCredentials } from './credentials';
import type { RequestState } from './state';
import { forgetVm, move } from './timeline';

/** The end of the request: the completion runbook as a child, and what it could not remove on the record. */
export async function cleanUp(state: RequestState, why: string): Promise<void> {
  const { serial, record } = state;
  const cancelled = record.status === 'Cancelled';
  forgetCredentials(state);
  await shredCredentials(state);
  move(state, 'cleanupStarted', why);
  // After the move: a waiting `complete` answers with the request on its way out.
  state.cleanupStarted = true;
  const completion = await executeChild(vmCompletion, {
    workflowId: completionWorkflowId(serial),
    args: [{ serial, name: record.request.name, vmid: record.device.vmid, node: record.device.node, ...(record.leftoverVms?.length ? { leftoverVms: record.leftoverVms } : {}) }],
    parentClosePolicy: ParentClosePolicy.ABANDON,
    staticSummary: `Cleanup of ${serial} (${record.request.name}, ${record.request.org})`,
  });
  record.leftovers = completion.leftovers;
  const outcome = completion.leftovers.length ? `left behind: ${completion.leftovers.join('; ')}` : 'nothing left behind';
  if (completion.vmDestroyed) forgetVm(state);
  move(state, cancelled ? 'cleanedUpAfterCancel' : 'cleanedUp', `${cancelled ? 'cancelled' : 'completed'}; ${outcome}`);
}
