import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import type { z } from 'zod';
import type { DeviceRequest } from '../../domain/deviceRequest';
import { RequestStatusKey } from '../../contracts/searchAttributes';
import { requestWorkflowId } from '../../contracts/workflowIds';
import type { ApiContext } from '../http/context';
import type { StartAdmission } from './startAdmission';
import { startRequestWorkflow } from './submission';

/** How many serials a submission may walk past (taken by other requests) before giving up. */
export const MAX_SERIAL_CANDIDATES = 8;

/** What a submission's memo says about the request that already holds a serial. */
export type Recognition = 'same request' | 'other body' | 'not ours';

/**
 * One submission (an API call, a class member, a webhook delivery) to start idempotently. Its serial — and so its
 * workflow id — is `serialAt(0)`, or the next candidate when another request holds that one; a retry of the same
 * submission walks the same sequence and meets the request its first try started (recognised by its memo).
 */
export interface IdempotentSubmission {
  serialAt(candidate: number): string;
  /** The request under a serial; the domain's refusal (naming the domain's field) when it is not one. */
  build(serial: string): { request: DeviceRequest } | { error: z.ZodError };
  /** Kept on the workflow for `recognise` to read on a retry; omitted: a taken serial is simply walked past. */
  memo?: Record<string, string>;
  recognise?(memo: Record<string, unknown> | undefined): Recognition;
  /** false: the submission may not start anything now (the policy refuses it), only find what an earlier try made. */
  mayStart: boolean;
  /** Bounds the starts waiting on Temporal at once. */
  admission?: StartAdmission;
}

export type IdempotentStart =
  | { started: string }
  /** An earlier try of this same submission started it: its status as it stands. */
  | { found: string; status: string }
  | { otherBody: string }
  | { invalid: z.ZodError }
  /** Temporal failed (the start, or the look-up of a taken serial): the request may or may not exist. */
  | { failed: unknown; serial: string; during: 'start' | 'lookup' }
  /** Turned away by the admission: nothing was started. */
  | { busy: true }
  /** Nothing started (it may not start) and no earlier try of it found. */
  | { notFound: true }
  /** Every candidate serial is another request's. */
  | { exhausted: true };

/**
 * Start-then-compare: the workflow id is the source of uniqueness (Temporal refuses a second workflow with it), so the
 * start is tried first and only a refusal is looked into. The one loop behind the submission, the class and the
 * webhook.
 */
export async function startIdempotently(ctx: ApiContext, s: IdempotentSubmission): Promise<IdempotentStart> {
  for (let candidate = 0; candidate < MAX_SERIAL_CANDIDATES; candidate++) {
    const serial = s.serialAt(candidate);
    if (s.mayStart) {
      const built = s.build(serial);
      if ('error' in built) return { invalid: built.error };
      try {
        const start = () => startRequestWorkflow(ctx, built.request, s.memo);
        if (s.admission) {
          if (!(await s.admission.run(start))) return { busy: true };
        } else {
          await start();
        }
        return { started: serial };
      } catch (err) {
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) return { failed: err, serial, during: 'start' };
      }
    }
    if (!s.recognise) continue;
    let existing;
    try {
      existing = await ctx.temporal(() => ctx.client.workflow.getHandle(requestWorkflowId(serial)).describe());
    } catch (err) {
      if (!s.mayStart && err instanceof WorkflowNotFoundError) return { notFound: true };
      return { failed: err, serial, during: 'lookup' };
    }
    const seen = s.recognise(existing.memo);
    if (seen === 'not ours') continue;
    if (seen === 'other body') return { otherBody: serial };
    return { found: serial, status: existing.typedSearchAttributes.get(RequestStatusKey) ?? 'Pending' };
  }
  return s.mayStart ? { exhausted: true } : { notFound: true };
}
