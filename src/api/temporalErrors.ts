import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import type { Response } from 'express';
import { problem } from './problems';

/**
 * Temporal's errors in HTTP terms: an unknown request is 404; an update its workflow refused (wrong state) is 409
 * with the workflow's own words; the rest is 503 (Temporal unreachable) with nothing secret in it.
 */
export function sendTemporalError(res: Response, err: unknown, serial?: string): void {
  if (err instanceof WorkflowNotFoundError) return problem(res, 404, 'not found', `no request ${serial ?? ''}`.trim());
  if (err instanceof WorkflowExecutionAlreadyStartedError) return problem(res, 409, 'conflict', err.message);
  if (err instanceof WorkflowUpdateFailedError) {
    return problem(res, 409, 'refused', err.cause?.message ?? err.message);
  }
  const message = err instanceof Error ? err.message : String(err);
  if (/not found/i.test(message) && /workflow/i.test(message)) return problem(res, 404, 'not found', `no request ${serial ?? ''}`.trim());
  return problem(res, 503, 'temporal unavailable', 'the workflow service did not answer; try again');
}
