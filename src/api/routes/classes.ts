import type { UpdateDefinition } from '@temporalio/common';
import { Router, type Request, type Response } from 'express';
import { approveUpdate, cancelUpdate, completeUpdate, rejectUpdate, type UpdateResult } from '../../contracts/messages';
import { actorOf } from '../auth/apiKeys';
import { permit } from '../auth/authenticate';
import { mayActIn, orgOf, requesterRefusal, type Action } from '../auth/permissions';
import type { ApiContext } from '../http/context';
import { compareWithExisting, idempotencyKeyOf, idempotencyMemo, idempotencyScope, type IdempotencyMemo } from '../intake/idempotency';
import { badRequest, badRequestIssues, problem, quotaExceeded } from '../http/problems';
import { listRequests } from '../reads/requestList';
import { actionBody, classIdParam, createClassBody, rejectBody, toUpdateAnswer, type RequestSummary } from '../../contracts/apiSchemas';
import { classIdForIdempotencyKey, newClassId, serialForClassMember } from '../reads/serials';
import { policyIssues, submissionQuotaExcess, toDeviceRequest, toWireField } from '../intake/submission';
import { intakeChoices, withResolvedDisk, type ResolvedChoices } from '../intake/choiceIntake';
import { startIdempotently } from '../intake/startIdempotently';
import { approvalQuotaExcess } from '../reads/quotaUse';
import { describeExcess } from '../../domain/quotas';
import { sendStartError, sendTemporalError } from '../http/temporalErrors';
import { requestWorkflowId } from '../../contracts/workflowIds';

/** Updates sent at once when a whole class is approved or completed. */
const UPDATES_AT_ONCE = 8;

type Member = { serial: string; name: string; status: string; created: boolean };

/**
 * `/api/classes`: a lab or an event, N identical VMs asked for together. Each VM is its own request (its own
 * workflow, build, lease and cleanup, findable by `ClassId` in Temporal UI); the class is what they share: one
 * submission, one approval, one completion. Their builds run together, bounded by the clone slots per node and
 * storage (PVE_CLONE_LIMIT_*), so that Proxmox's storage locks do not fail them.
 */
export function classRoutes(ctx: ApiContext): Router {
  const router = Router();

  router.post('/', async (req, res) => {
    const principal = permit(res, 'submit');
    if (!principal) return;
    const idempotency = idempotencyKeyOf(req);
    if ('error' in idempotency) return badRequest(res, idempotency.error, 'headers');
    const body = createClassBody.safeParse(req.body ?? {});
    if (!body.success) return badRequest(res, body.error);
    const policy = policyIssues(ctx.policy, body.data);
    // With an Idempotency-Key the refusal waits: a retry finds the members made while the policy held.
    if (policy.length && idempotency.key === undefined) return badRequestIssues(res, policy);
    const { count, ...shared } = body.data;
    if (!mayActIn(principal, shared.client)) {
      return problem(res, 403, 'forbidden', `key ${principal.id} may submit requests only for ${orgOf(principal)}`);
    }
    const asWho = requesterRefusal(principal, shared.requester);
    if (asWho) return problem(res, 403, 'forbidden', asWho);
    const resolved = await intakeChoices(ctx, res, body.data);
    if (!resolved) return;
    // With an Idempotency-Key the class id, and from it every member's serial, is derived: a retry after a lost
    // answer meets the members the first try made and starts only the missing ones.
    const classId = idempotency.key === undefined ? newClassId() : classIdForIdempotencyKey(idempotencyScope(principal), idempotency.key);
    // The whole class is counted against the quota, before any member starts: it fits whole or not at all. Members an
    // earlier try made are the class's own, not counted twice.
    let overQuota;
    try {
      overQuota = policy.length ? undefined : await submissionQuotaExcess(ctx, withResolvedDisk(shared, resolved), count, { classId });
    } catch (err) {
      return sendTemporalError(res, err);
    }
    if (overQuota && idempotency.key === undefined) return quotaExceeded(res, overQuota);
    const mayStart = policy.length === 0 && !overQuota;
    const retry = idempotency.key === undefined ? undefined : idempotencyMemo(idempotencyScope(principal), idempotency.key, body.data);
    const members: Member[] = [];
    for (let index = 1; index <= count; index++) {
      const name = `${shared.name}-${String(index).padStart(2, '0')}`;
      const started = await startMember(ctx, classId, index, count, { ...shared, name }, resolved, mayStart, retry);
      if ('invalid' in started) return badRequest(res, started.invalid, 'body', toWireField);
      if ('notFound' in started) return overQuota ? quotaExceeded(res, overQuota) : badRequestIssues(res, policy);
      if ('failed' in started) {
        // Members made so far stay (and are found again by a retry with the same Idempotency-Key).
        return sendStartError(res, started.failed, started.serial, idempotency.key);
      }
      if ('otherBody' in started) {
        return problem(res, 409, 'conflict', `Idempotency-Key ${idempotency.key} was already used for class ${classId} with a different body; a new class needs a new key`);
      }
      if ('exhausted' in started || 'busy' in started) return problem(res, 503, 'conflict', `could not allocate a unique serial for ${name}; try again`);
      members.push('started' in started ? { serial: started.started, status: 'Pending', created: true, name } : { serial: started.found, status: started.status, created: false, name });
    }
    const replayed = members.every((m) => !m.created);
    res
      .status(replayed ? 200 : 201)
      .location(`/api/classes/${classId}`)
      .set(replayed ? { 'Idempotent-Replayed': 'true' } : {})
      .json({ class: classId, requests: members.map(({ serial, name, status }) => ({ serial, name, status })) });
  });

  router.get('/:id', async (req, res) => {
    const principal = permit(res, 'list');
    if (!principal) return;
    const id = classIdOf(req, res);
    if (!id) return;
    try {
      const requests = await membersOf(ctx, id, orgOf(principal));
      if (requests.length === 0) return problem(res, 404, 'not found', `no class ${id}`);
      res.json({ class: id, requests });
    } catch (err) {
      sendTemporalError(res, err);
    }
  });

  /** One action on every open member: each answers for itself, as it would alone. */
  const action = <A>(name: Action, update: UpdateDefinition<UpdateResult, [A]>, parse: (req: Request, by: string) => { args: A } | { error: Parameters<typeof badRequest>[1] }) => {
    router.post(`/:id/${name}`, async (req: Request, res: Response) => {
      const principal = permit(res, name);
      if (!principal) return;
      const id = classIdOf(req, res);
      if (!id) return;
      const input = parse(req, actorOf(principal));
      if ('error' in input) return badRequest(res, input.error);
      let requests: RequestSummary[];
      try {
        requests = await membersOf(ctx, id, orgOf(principal));
      } catch (err) {
        return sendTemporalError(res, err);
      }
      if (requests.length === 0) return problem(res, 404, 'not found', `no class ${id}`);
      const open = requests.filter((r) => r.open);
      // Approval checks the quota again, once for the class: its members count alike, so they fit or refuse together.
      let overQuota: string | undefined;
      const pending = name === 'approve' ? open.find((r) => r.status === 'Pending') : undefined;
      if (pending) {
        try {
          const excess = await approvalQuotaExcess(ctx, pending.org, pending.serial);
          overQuota = excess && describeExcess(excess);
        } catch (err) {
          return sendTemporalError(res, err);
        }
      }
      const results = await inBatches(open, UPDATES_AT_ONCE, async (r) => {
        if (overQuota && r.status === 'Pending') return { serial: r.serial, ...optionalName(r), status: r.status, refused: overQuota };
        try {
          const handle = ctx.client.workflow.getHandle(requestWorkflowId(r.serial));
          const done = await ctx.temporal(() => handle.executeUpdate(update, { args: [input.args] }));
          // Each member answers as a request alone does: as the action left it.
          const { build, builds_at } = toUpdateAnswer(done);
          return { serial: r.serial, ...optionalName(r), status: done.status, ...(build ? { build } : {}), ...(builds_at ? { builds_at } : {}) };
        } catch (err) {
          return { serial: r.serial, ...optionalName(r), status: r.status, refused: err instanceof Error ? err.message : String(err) };
        }
      });
      const ended = requests.filter((r) => !r.open).map((r) => ({ serial: r.serial, ...optionalName(r), status: r.status, refused: 'the request has ended' }));
      const all = [...results, ...ended];
      res.status(results.some((r) => !('refused' in r)) ? 200 : 409).json({ class: id, requests: all });
    });
  };
  const noted = (req: Request, by: string) => {
    const body = actionBody.safeParse(req.body ?? {});
    return body.success ? { args: { by, ...(body.data.note ? { note: body.data.note } : {}) } } : { error: body.error };
  };
  action('approve', approveUpdate, noted);
  action('cancel', cancelUpdate, noted);
  action('complete', completeUpdate, noted);
  action('reject', rejectUpdate, (req, by) => {
    const body = rejectBody.safeParse(req.body ?? {});
    return body.success ? { args: { by, reason: body.data.reason } } : { error: body.error };
  });

  return router;
}

/**
 * Starts member `index` of the class, or finds it started by an earlier try of the same submission (same class and
 * place, kept in its memo). `mayStart` false: only finds it.
 */
function startMember(ctx: ApiContext, classId: string, index: number, size: number, body: Parameters<typeof toDeviceRequest>[1], resolved: ResolvedChoices, mayStart: boolean, retry: IdempotencyMemo | undefined) {
  const marker = `${classId}#${index}`;
  return startIdempotently(ctx, {
    serialAt: (candidate) => serialForClassMember(classId, index, candidate),
    build: (serial) => {
      const built = toDeviceRequest(serial, body, resolved);
      return 'error' in built ? built : { request: { ...built.request, class: { id: classId, index, size } } };
    },
    // With an Idempotency-Key, also whose key and which body (digests): a class of another org whose id collides is
    // not ours, and the same key with another body is refused, as for a single request (issue 27).
    memo: { classMember: marker, ...(retry ?? {}) },
    recognise: (memo) => {
      if (memo?.classMember !== marker) return 'not ours';
      return retry && memo.idempotencySha256 !== undefined ? compareWithExisting(memo, retry) : 'same request';
    },
    mayStart,
  });
}

const optionalName = (r: RequestSummary) => (r.name === undefined ? {} : { name: r.name });

async function membersOf(ctx: ApiContext, classId: string, org: string | undefined): Promise<RequestSummary[]> {
  const page = await listRequests(ctx, { class: classId, ...(org !== undefined ? { org } : {}) }, { size: 100 });
  // In the class's own order (<name>-01, -02, ...), which is what its people call the VMs.
  return page.items.sort((a, b) => (a.name ?? '').localeCompare(b.name ?? '') || a.serial.localeCompare(b.serial));
}

function classIdOf(req: Request, res: Response): string | undefined {
  const parsed = classIdParam.safeParse(req.params);
  if (!parsed.success) {
    badRequest(res, parsed.error, 'path');
    return undefined;
  }
  return parsed.data.id;
}

async function inBatches<T, R>(items: T[], size: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size) out.push(...(await Promise.all(items.slice(i, i + size).map(fn))));
  return out;
}
