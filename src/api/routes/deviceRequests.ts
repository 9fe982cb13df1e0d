import { isGrpcServiceError } from '@temporalio/client';
import type { UpdateDefinition } from '@temporalio/common';
import { Router, type Request, type Response } from 'express';
import type { z } from 'zod';
import { approveUpdate, cancelUpdate, completeUpdate, extendUpdate, rebuildUpdate, rejectUpdate, statusQuery, type UpdateResult } from '../../contracts/messages';
import { actorOf, type Principal } from '../auth/apiKeys';
import { permit } from '../auth/authenticate';
import { mayActIn, orgOf, requesterRefusal, type Action } from '../auth/permissions';
import type { ApiContext } from '../http/context';
import { badRequest, badRequestIssues, problem, quotaExceeded, tooMany } from '../http/problems';
import { findRequest } from '../reads/requestAccess';
import { withCurrentBuild } from '../day2/requestBuild';
import { decodePageToken, listRequests } from '../reads/requestList';
import { actionBody, createDeviceRequestBody, extendBody, listQuery, rejectBody, serialParam, toUpdateAnswer } from '../../contracts/apiSchemas';
import { compareWithExisting, idempotencyKeyOf, idempotencyMemo, idempotencyScope } from '../intake/idempotency';
import { newSerial, serialForIdempotencyKey } from '../reads/serials';
import { policyIssues, submissionQuotaExcess, toDeviceRequest, toWireField } from '../intake/submission';
import { startIdempotently } from '../intake/startIdempotently';
import { approvalQuotaExcess } from '../reads/quotaUse';
import { StartAdmission } from '../intake/startAdmission';
import { intakeChoices, withResolvedDisk } from '../intake/choiceIntake';
import { sendStartError, sendTemporalError, sendUpdateError } from '../http/temporalErrors';
import { streamRequestLogs } from './requestLogs';
import { CredentialsShredded, revealCredentials } from '../day2/credentialReveal';
import { requestWorkflowId } from '../../contracts/workflowIds';

/**
 * `/api/device_requests`: submit, find, read and move a request through its life. Every change is a Workflow Update,
 * so the caller hears what the workflow decided (or why it refused). Who acted is the API key's holder.
 */
export function deviceRequestRoutes(ctx: ApiContext): Router {
  const router = Router();
  const { client } = ctx;
  const admission = new StartAdmission(ctx.timings.maxStartsInFlight);

  router.post('/', async (req, res) => {
    const principal = permit(res, 'submit');
    if (!principal) return;
    const idempotency = idempotencyKeyOf(req);
    if ('error' in idempotency) return badRequest(res, idempotency.error, 'headers');
    const body = createDeviceRequestBody.safeParse(req.body ?? {});
    if (!body.success) return badRequest(res, body.error);
    const policy = policyIssues(ctx.policy, body.data);
    // With an Idempotency-Key the refusal waits: a retry of a request made while the policy held (its period has
    // since moved into the past) still finds that request. Without one there is nothing to find.
    if (policy.length && idempotency.key === undefined) return badRequestIssues(res, policy);
    if (!mayActIn(principal, body.data.client)) {
      return problem(res, 403, 'forbidden', `key ${principal.id} may submit requests only for ${orgOf(principal)}`);
    }
    const asWho = requesterRefusal(principal, body.data.requester);
    if (asWho) return problem(res, 403, 'forbidden', asWho);
    const resolved = await intakeChoices(ctx, res, body.data);
    if (!resolved) return;
    const key = idempotency.key;
    let overQuota;
    try {
      overQuota = policy.length ? undefined : await submissionQuotaExcess(ctx, withResolvedDisk(body.data, resolved));
    } catch (err) {
      return sendTemporalError(res, err);
    }
    // Like the policy's refusal, the quota's waits for a look for the request an earlier try (under the quota) made.
    if (overQuota && key === undefined) return quotaExceeded(res, overQuota);
    const scope = idempotencyScope(principal);
    const memo = key === undefined ? undefined : idempotencyMemo(scope, key, body.data);
    // A random serial collides astronomically rarely; a derived one walks the same sequence on every retry.
    const outcome = await startIdempotently(ctx, {
      serialAt: (candidate) => (key === undefined ? newSerial() : serialForIdempotencyKey(scope, key, candidate)),
      build: (serial) => toDeviceRequest(serial, body.data, resolved),
      ...(memo ? { memo, recognise: (existing) => compareWithExisting(existing, memo) } : {}),
      mayStart: !policy.length && !overQuota,
      admission,
    });
    if ('started' in outcome) return res.status(201).location(`/api/device_requests/${outcome.started}`).json({ serial: outcome.started, status: 'Pending' });
    if ('found' in outcome) {
      return res.status(200).location(`/api/device_requests/${outcome.found}`).set('Idempotent-Replayed', 'true').json({ serial: outcome.found, status: outcome.status });
    }
    if ('invalid' in outcome) return badRequest(res, outcome.invalid, 'body', toWireField);
    if ('busy' in outcome) {
      res.setHeader('Retry-After', '1');
      return problem(res, 503, 'busy', `${admission.busy} submissions are being started already: nothing was created for this one. Retry in a second${key === undefined ? '' : ' with the same Idempotency-Key'}.`);
    }
    if ('failed' in outcome) return outcome.during === 'start' ? sendStartError(res, outcome.failed, outcome.serial, key) : sendTemporalError(res, outcome.failed, outcome.serial);
    if ('otherBody' in outcome) {
      return problem(res, 409, 'conflict', `Idempotency-Key ${key} was already used for request ${outcome.otherBody} with a different body; a new request needs a new key`);
    }
    // Not a retry of an earlier request: the policy's refusal stands.
    if (policy.length) return badRequestIssues(res, policy);
    if (overQuota) return quotaExceeded(res, overQuota);
    return problem(res, 503, 'conflict', 'could not allocate a unique serial; try again');
  });

  router.get('/', async (req, res) => {
    const principal = permit(res, 'list');
    if (!principal) return;
    const query = listQuery.safeParse(req.query);
    if (!query.success) return badRequest(res, query.error, 'query');
    const { page_size, page_token, ...filter } = query.data;
    const own = orgOf(principal);
    if (own !== undefined && filter.org !== undefined && filter.org !== own) {
      return problem(res, 403, 'forbidden', `key ${principal.id} sees only the requests of ${own}`);
    }
    const token = page_token === undefined ? undefined : decodePageToken(page_token, ctx.pageTokenKey);
    if (page_token !== undefined && !token) return badPageToken(res);
    try {
      res.json(await listRequests(ctx, { ...filter, org: own ?? filter.org }, { size: page_size, token }));
    } catch (err) {
      // Only a token sent can be blamed: any other refusal of the query is Temporal's to explain.
      if (token && isBadPageToken(err)) return badPageToken(res);
      sendTemporalError(res, err);
    }
  });

  router.get('/:serial', async (req, res) => {
    const principal = permit(res, 'read');
    if (!principal) return;
    const serial = serialOf(req, res);
    if (!serial) return;
    if (!(await findRequest(ctx, res, principal, serial))) return;
    try {
      const record = await ctx.temporal(() => client.workflow.getHandle(requestWorkflowId(serial)).query(statusQuery));
      res.json(await withCurrentBuild(ctx, record));
    } catch (err) {
      sendTemporalError(res, err, serial);
    }
  });

  router.get('/:serial/logs', async (req, res) => {
    const principal = permit(res, 'logs');
    if (!principal) return;
    const serial = serialOf(req, res);
    if (!serial) return;
    if (!(await findRequest(ctx, res, principal, serial))) return;
    const slot = ctx.streams.acquire(principal.id);
    if (!slot.ok) return tooMany(res, slot);
    try {
      await streamRequestLogs(ctx, req, res, serial);
    } finally {
      slot.release();
    }
  });

  /**
   * The guest's logins to one of the request's consultants (the key's email must be on the request): the request
   * records who took them, answers that consultant again within the re-fetch window, then shreds them. Never cached
   * anywhere on the way.
   */
  router.get('/:serial/credentials', async (req, res) => {
    const principal = permit(res, 'credentials');
    if (!principal) return;
    const serial = serialOf(req, res);
    if (!serial) return;
    const found = await findRequest(ctx, res, principal, serial);
    if (!found) return;
    if (!principal.email) return problem(res, 403, 'forbidden', `key ${principal.id} has no email: credentials go to a consultant of the request only`);
    if (!ctx.credentialKeys) return problem(res, 503, 'unavailable', 'this API has no credential key store (CREDENTIAL_KEYS_DIR): credentials cannot be revealed');
    try {
      const c = await revealCredentials(client, ctx.credentialKeys, serial, requestWorkflowId(serial), principal.email, ctx.temporal);
      res.setHeader('Cache-Control', 'no-store');
      // What the handover did, with the logins: to whom, when, and until when the same consultant may fetch them again.
      res.json({
        serial,
        username: c.username,
        password: c.password,
        root_password: c.rootPassword,
        revealed_to: c.revealedTo,
        revealed_at: c.revealedAt,
        ...(c.refetchUntil ? { refetchable_until: c.refetchUntil } : {}),
      });
    } catch (err) {
      if (err instanceof CredentialsShredded) return problem(res, 500, 'misconfigured', err.message);
      sendTemporalError(res, err, serial);
    }
  });

  /** One action: role, input, the request as the key may see it, then the workflow's own decision. */
  const action = <B, A>(name: Action, update: UpdateDefinition<UpdateResult, [A]>, schema: z.ZodType<B>, toArgs: (body: B, by: string) => A) => {
    router.post(`/:serial/${name}`, async (req: Request, res: Response) => {
      const principal: Principal | undefined = permit(res, name);
      if (!principal) return;
      const serial = serialOf(req, res);
      if (!serial) return;
      const body = schema.safeParse(req.body ?? {});
      if (!body.success) return badRequest(res, body.error);
      const found = await findRequest(ctx, res, principal, serial);
      if (!found) return;
      if (!found.open) return problem(res, 409, 'refused', `cannot ${name} request ${serial}: it has ended (${found.status ?? 'closed'})`);
      if ((name === 'approve' && found.status === 'Pending') || (name === 'rebuild' && (found.status === 'Cancelled' || found.status === 'Failed'))) {
        // The quota again, as it stands now: the build starts on approval, or on a rebuild (issue 27: a cancelled
        // request released its share, and a rebuild once took it back past the quota).
        let excess;
        try {
          excess = await approvalQuotaExcess(ctx, found.org, serial, found.size);
        } catch (err) {
          return sendTemporalError(res, err, serial);
        }
        if (excess) return quotaExceeded(res, excess);
      }
      try {
        const handle = client.workflow.getHandle(requestWorkflowId(serial));
        const result: UpdateResult = await ctx.temporal(() => handle.executeUpdate(update, { args: [toArgs(body.data, actorOf(principal))] }));
        res.json(toUpdateAnswer(result));
      } catch (err) {
        sendUpdateError(res, err, serial, name);
      }
    });
  };
  const noted = (b: { note?: string }, by: string) => ({ by, ...(b.note ? { note: b.note } : {}) });
  action('approve', approveUpdate, actionBody, noted);
  action('reject', rejectUpdate, rejectBody, (b, by) => ({ by, reason: b.reason }));
  action('cancel', cancelUpdate, actionBody, noted);
  action('rebuild', rebuildUpdate, actionBody, noted);
  action('complete', completeUpdate, actionBody, noted);
  action('extend', extendUpdate, extendBody, (b, by) => ({ by, newEnd: b.new_end, ...(b.note ? { note: b.note } : {}) }));

  return router;
}

function serialOf(req: Request, res: Response): string | undefined {
  const parsed = serialParam.safeParse(req.params);
  if (!parsed.success) {
    badRequest(res, parsed.error, 'path');
    return undefined;
  }
  return parsed.data.serial;
}

function badPageToken(res: Response): void {
  res.status(400).json({ error: 'invalid request', issues: [{ field: 'page_token', reason: 'not a next_page_token this API handed out (or it has expired)' }] });
}

/** gRPC status INVALID_ARGUMENT (@grpc/grpc-js is not ours to import). */
const GRPC_INVALID_ARGUMENT = 3;

/** The list query is ours and always valid, so an argument Temporal refuses can only be the caller's page token. */
function isBadPageToken(err: unknown): boolean {
  return isGrpcServiceError(err) && err.code === GRPC_INVALID_ARGUMENT;
}
