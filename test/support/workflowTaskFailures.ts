import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

export interface WorkflowTaskFailure {
  workflowId: string;
  runId: string;
  eventId: number;
  cause: string;
  message: string;
  /** The worker could not replay the history on this code (TMPRL1100): a workflow change not behind `patched()`. */
  nonDeterminism: boolean;
}

const Cause = temporal.api.enums.v1.WorkflowTaskFailedCause;
/**
 * Failures that are part of Temporal's normal work, not of our code: a signal or update that arrived while the task
 * completing the workflow was in flight (the task is retried with it), a sticky queue reset after a worker restart.
 */
const ROUTINE = new Set<number>([Cause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND, Cause.WORKFLOW_TASK_FAILED_CAUSE_RESET_STICKY_TASK_QUEUE]);

/**
 * Every failed workflow task in the histories of `query`'s executions (all of the namespace by default). A workflow
 * task that fails is retried forever: the execution is wedged, visibly only here and in the worker's log.
 */
export async function workflowTaskFailures(client: Client, query?: string): Promise<WorkflowTaskFailure[]> {
  const found: WorkflowTaskFailure[] = [];
  for await (const execution of client.workflow.list(query ? { query } : {})) {
    const history = await client.workflow.getHandle(execution.workflowId, execution.runId).fetchHistory();
    for (const event of history.events ?? []) {
      const failed = event.workflowTaskFailedEventAttributes;
      if (!failed || ROUTINE.has(failed.cause ?? 0)) continue;
      const message = failed.failure?.message ?? '';
      const cause = Cause[failed.cause ?? 0] ?? String(failed.cause);
      found.push({
        workflowId: execution.workflowId,
        runId: execution.runId,
        eventId: Number(event.eventId),
        cause,
        message,
        nonDeterminism: failed.cause === Cause.WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR || /TMPRL1100|nondetermini/i.test(message),
      });
    }
  }
  return found;
}
