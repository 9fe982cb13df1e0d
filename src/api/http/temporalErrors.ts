import { isGrpcDeadlineError, QueryNotRegisteredError, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError } from '@temporalio/client';
import type { Response } from 'express';
import { ApiStopping } from './inFlightCalls';
import { problem } from './problems';

/**
 * Temporal's errors in HTTP terms: an unknown request is 404; an update its workflow refused (wrong state) is 409
 * with the workflow's own words; a call that ran out of time is 504 (usually: no worker is polling); a query the
 * worker could not answer is 500 (no retry helps: see queryFailure); the rest is 503 (Temporal unreachable) with
 * nothing secret in it.
 */
export function sendTemporalError(res: Response, err: unknown, serial?: string): void {
  if (res.headersSent) return;
  if (err instanceof ApiStopping) return problem(res, 503, 'stopping', 'this API is stopping; try again in a moment (or at another instance)');
  if (err instanceof WorkflowNotFoundError) return problem(res, 404, 'not found', `no request ${serial ?? ''}`.trim());
  if (err instanceof WorkflowExecutionAlreadyStartedError) return problem(res, 409, 'conflict', err.message);
  if (err instanceof WorkflowUpdateFailedError) return problem(res, 409, 'refused', err.cause?.message ?? err.message);
  if (outlivedDeadline(err)) {
    return problem(res, 504, 'timeout', 'Temporal did not answer in time: is a pveflow worker running and polling the task queue?');
  }
  if (err instanceof QueryNotRegisteredError) return queryFailure(res, err, serial);
  const message = err instanceof Error ? err.message : String(err);
  if (/not found/i.test(message) && /workflow/i.test(message)) return problem(res, 404, 'not found', `no request ${serial ?? ''}`.trim());
  return problem(res, 503, 'temporal unavailable', 'the workflow service did not answer; try again');
}

/**
 * The worker answered the query with a failure (Temporal reports it as an invalid argument): asking again gets the
 * same answer, so it is never a 503 "try again". The one an operator must act on is non-determinism: the running
 * workers' code cannot replay the request's history (a workflow change not behind patched(), docs/versioning.md).
 */
function queryFailure(res: Response, err: QueryNotRegisteredError, serial: string | undefined): void {
  const which = serial ? `request ${serial}` : 'this workflow';
  if (/nondetermin/i.test(err.message)) {
    return problem(
      res,
      500,
      'workflow not replayable',
      `the workers cannot replay the history of ${which}: their workflow code takes another path than the code that ran it (non-determinism). ` +
        'Retrying will not help: deploy the workers of the release that started it (or a fix behind patched(), docs/versioning.md); the request waits meanwhile, nothing is lost.',
    );
  }
  return problem(res, 500, 'query failed', `the worker could not answer for ${which}: ${err.message.slice(0, 300)}`);
}

/**
 * An action (a workflow Update) whose answer did not come back: the Update may have been accepted and taken effect
 * all the same — the deadline may have passed after the workflow ran it, or Temporal failed once it had it. Saying
 * "failed" would be false half the time; say that the outcome is unknown and how to find it out. A refusal, an unknown
 * request or a call never sent keep their own answers. `outcome`: where the action's outcome appears (a day-2
 * operation's own path); by default the request, whose status and timeline show it.
 */
export function sendUpdateError(res: Response, err: unknown, serial: string, action: string, outcome = `/api/device_requests/${serial}`): void {
  if (res.headersSent) return;
  // Never sent (the API is stopping) is as certain an answer as a refusal: nothing took effect.
  if (err instanceof WorkflowNotFoundError || err instanceof WorkflowUpdateFailedError || err instanceof ApiStopping) return sendTemporalError(res, err, serial);
  const message = err instanceof Error ? err.message : String(err);
  if (/not found/i.test(message) && /workflow/i.test(message)) return sendTemporalError(res, err, serial);
  const timedOut = outlivedDeadline(err);
  const detail =
    `${timedOut ? 'Temporal did not confirm the' : 'the workflow service failed during the'} ${action} of request ${serial}: it may or may not ` +
    `have taken effect. GET ${outcome} shows it (the ${action} is on the request's timeline if it happened): check there ` +
    `before sending it again.`;
  res.status(timedOut ? 504 : 503).json({ error: 'outcome unknown', detail, serial, outcome });
}

/**
 * A submission's start that failed without a clear answer (deadline, Temporal unreachable): Temporal may have
 * created the request anyway, so say how to find out, and how a retry stays safe.
 */
export function sendStartError(res: Response, err: unknown, serial: string, idempotencyKey: string | undefined): void {
  if (res.headersSent) return;
  if (err instanceof ApiStopping) return sendTemporalError(res, err, serial); // never sent: nothing was created
  const timedOut = isDeadline(err);
  const what = timedOut ? 'Temporal did not confirm the start in time' : 'the workflow service did not answer';
  const detail = idempotencyKey
    ? `${what}: request ${serial} may or may not have been created. Retry with the same Idempotency-Key: a retry finds the request if it exists and never creates a second one.`
    : `${what}: request ${serial} may have been created all the same. GET /api/device_requests/${serial} tells (still 404 a few seconds later: it was not); ` +
      'resubmitting without checking may create a second request. Send an Idempotency-Key header to make retries safe.';
  res.status(timedOut ? 504 : 503).json({ error: timedOut ? 'timeout' : 'temporal unavailable', detail, serial });
}

/** The call ran out of its deadline (or was cancelled) before Temporal answered: nothing is known of its outcome. */
export function outlivedDeadline(err: unknown): boolean {
  return err instanceof WorkflowUpdateRPCTimeoutOrCancelledError || isDeadline(err);
}

function isDeadline(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (isGrpcDeadlineError(e)) return true;
  }
  return false;
}
