import { ApplicationFailure, TemporalFailure } from '@temporalio/workflow';

/**
 * What an activity or a child workflow said when it failed (what Proxmox, NetBird or the node said), not Temporal's
 * wrapper ("Activity task failed", "Child Workflow execution failed"): the one helper every workflow words a
 * failure with, on the timeline, in a build's error and in a completion's leftovers.
 */
export function failureMessage(err: unknown): string {
  let e: unknown = err;
  while (e instanceof TemporalFailure && !(e instanceof ApplicationFailure) && e.cause) e = e.cause;
  return e instanceof Error ? e.message : String(e);
}
