import { createHash, randomUUID } from 'node:crypto';
import { WorkflowUpdateStage, type UpdateDefinition } from '@temporalio/client';
import { Router, type Request, type Response } from 'express';
import type { z } from 'zod';
import { migrateUpdate, powerUpdate, reconfigureUpdate, snapshotUpdate, statusQuery } from '../../contracts/messages';
import type { OperationCaller, OperationResult, VmSize } from '../../contracts/vmOperations';
import { requestWorkflowId } from '../../contracts/workflowIds';
import { actorOf, type Principal } from '../auth/apiKeys';
import { permit } from '../auth/authenticate';
import type { Action } from '../auth/permissions';
import type { ApiContext } from '../http/context';
import { idempotencyKeyOf, idempotencyScope } from '../intake/idempotency';
import { badRequest, badRequestIssues, problem, quotaExceeded } from '../http/problems';
import { quotaExcess } from '../reads/quotaUse';
import { quotaFor, sizeOf } from '../../domain/quotas';
import { snapshotLimitOf } from '../../domain/requestPolicyRules';
import { findRequest } from '../reads/requestAccess';
import { serialParam } from '../../contracts/apiSchemas';
import { outlivedDeadline, sendTemporalError, sendUpdateError } from '../http/temporalErrors';
import { migrateBody, operationNoteBody, operationParams, operationPath, powerBody, reconfigureBody, snapshotBody, snapshotParams, toOperationAnswer, toSnapshot } from '../../contracts/vmOperationSchemas';

/**
 * The day-2 operations on a request's VM: power, reconfigure, snapshots, migrate. Each is a Workflow Update on the
 * request, which decides (its state, one operation at a time, the snapshot limit) and answers once the operation
 * has ended; the role is checked here and again by the workflow. An `Idempotency-Key` makes a retry safe: the same
 * key is the same operation, done once. Two deadlines: the request accepts or refuses the operation within the API's
 * (API_TEMPORAL_TIMEOUT_MS); the operation then has its own (API_OPERATION_WAIT_MS: a guest's reboot takes longer),
 * past which the answer is 202 with the operation's own path, where its outcome appears.
 */
export function vmOperationRoutes(ctx: ApiContext): Router {
  const router = Router();

  /** Role, input, the request as the key may see it, then the workflow's decision and the operation's outcome. */
  const operate = async <B>(
    req: Request,
    res: Response,
    action: Action,
    kind: string,
    schema: z.ZodType<B>,
    update: UpdateDefinition<OperationResult, [never]>,
    toArgs: (body: B, caller: OperationCaller) => object,
    params: z.ZodType<{ serial: string }> = serialParam,
    /** A check before the update (the org's quotas): true when it answered the caller itself. */
    before?: (serial: string, org: string, body: B) => Promise<boolean>,
  ) => {
    const principal: Principal | undefined = permit(res, action);
    if (!principal) return;
    const path = params.safeParse(req.params);
    if (!path.success) return badRequest(res, path.error, 'path');
    const idempotency = idempotencyKeyOf(req);
    if ('error' in idempotency) return badRequest(res, idempotency.error, 'headers');
    const body = schema.safeParse(req.body ?? {});
    if (!body.success) return badRequest(res, body.error);
    const { serial } = path.data;
    const found = await findRequest(ctx, res, principal, serial);
    if (!found) return;
    if (!found.open) return problem(res, 409, 'refused', `cannot ${kind} on request ${serial}: it has ended (${found.status ?? 'closed'})`);
    try {
      if (before && (await before(serial, found.org, body.data))) return;
    } catch (err) {
      return sendTemporalError(res, err, serial);
    }
    const id = operationId(principal, idempotency.key);
    const note = (body.data as { note?: string }).note;
    const caller: OperationCaller = { id, by: actorOf(principal), role: principal.role, ...(note ? { note } : {}) };
    const outcome = operationPath(serial, id);
    try {
      const handle = ctx.client.workflow.getHandle(requestWorkflowId(serial));
      const args = toArgs(body.data, caller);
      // Temporal answers a known update id with that update's outcome without asking the workflow: the id carries what
      // is asked too, so that a key reused for another operation reaches the workflow, which refuses it.
      const updateId = `${kind}:${id}:${createHash('sha256').update(JSON.stringify(args)).digest('hex').slice(0, 16)}`;
      const accepted = await ctx.temporal(() => handle.startUpdate(update, { args: [args as never], updateId, waitForStage: WorkflowUpdateStage.ACCEPTED }));
      let result: OperationResult;
      try {
        result = await ctx.temporal(() => accepted.result(), ctx.timings.operationWaitMs);
      } catch (err) {
        if (!outlivedDeadline(err)) throw err;
        const detail = `the request accepted the ${kind} and it is still running: GET ${outcome} shows its outcome once it has ended (operation.state no longer running).`;
        return res.status(202).location(outcome).json({ serial, operation_id: id, outcome, detail });
      }
      const answer = toOperationAnswer(result);
      if (result.operation.state === 'failed') {
        return res.status(502).json({ error: 'operation failed', detail: `${result.operation.what} on request ${serial} failed: ${result.operation.outcome ?? 'no reason given'}`, ...answer });
      }
      res.json(answer);
    } catch (err) {
      sendUpdateError(res, err, serial, kind, outcome);
    }
  };

  router.post('/:serial/power', (req, res) => operate(req, res, 'power', 'power', powerBody, powerUpdate as never, (b, c) => ({ ...c, action: b.action })));
  router.post('/:serial/reconfigure', (req, res) =>
    operate(
      req,
      res,
      'reconfigure',
      'reconfigure',
      reconfigureBody,
      reconfigureUpdate as never,
      (b, c) => ({
        ...c,
        ...(b.cores !== undefined ? { cores: b.cores } : {}),
        ...(b.memory_mib !== undefined ? { memoryMiB: b.memory_mib } : {}),
        ...(b.disk_gib !== undefined ? { diskGiB: b.disk_gib } : {}),
        ...(b.confirm_reboot ? { confirmReboot: true } : {}),
      }),
      serialParam,
      // A disk within the bound a submission has; a VM that grows holds more of its org's quotas: counted like a
      // submission, this request at its new size.
      async (serial, org, b) => {
        const maxDisk = ctx.choices.limits.maxDiskGiB;
        if (b.disk_gib !== undefined && b.disk_gib > maxDisk) {
          badRequestIssues(res, [{ field: 'disk_gib', reason: `at most ${maxDisk} GiB (REQUEST_MAX_DISK_GIB)`, rule: 'choice-limit' }]);
          return true;
        }
        const { request } = await ctx.temporal(() => ctx.client.workflow.getHandle(requestWorkflowId(serial)).query(statusQuery));
        return refusedOverQuota(res, serial, org, request, { cores: b.cores ?? request.cores, memoryMiB: b.memory_mib ?? request.memoryMiB, diskGiB: b.disk_gib ?? request.diskGiB });
      },
    ),
  );
  router.post('/:serial/snapshots', (req, res) =>
    operate(req, res, 'snapshot', 'snapshot', snapshotBody, snapshotUpdate as never, (b, c) => ({
      ...c,
      action: 'create',
      name: b.name,
      ...(b.with_ram ? { withRam: true } : {}),
      ...(b.description ? { description: b.description } : {}),
    })),
  );
  router.post('/:serial/snapshots/:name/revert', (req, res) =>
    operate(
      req,
      res,
      'snapshot',
      'snapshot',
      operationNoteBody,
      snapshotUpdate as never,
      (_b, c) => ({ ...c, action: 'revert', name: req.params.name }),
      snapshotParams,
      // A revert brings back the VM's size when the snapshot was taken (Proxmox restores its config): counted first.
      async (serial, org) => {
        const { request, snapshots } = await ctx.temporal(() => ctx.client.workflow.getHandle(requestWorkflowId(serial)).query(statusQuery));
        const size = snapshots?.find((s) => s.name === req.params.name)?.size;
        return size ? refusedOverQuota(res, serial, org, request, { ...size, diskGiB: Math.max(size.diskGiB ?? 0, request.diskGiB ?? 0) || undefined }) : false;
      },
    ),
  );
  router.delete('/:serial/snapshots/:name', (req, res) =>
    operate(req, res, 'snapshot', 'snapshot', operationNoteBody, snapshotUpdate as never, (_b, c) => ({ ...c, action: 'delete', name: req.params.name }), snapshotParams),
  );
  router.post('/:serial/migrate', (req, res) => operate(req, res, 'migrate', 'migrate', migrateBody, migrateUpdate as never, (b, c) => ({ ...c, target: b.target })));

  /**
   * A VM that grows holds more of its org's quotas: counted like a submission, this request at its new size; a 409
   * naming the quota when it does not fit (true: answered). Shrinking, or an org without quotas, is never refused.
   */
  async function refusedOverQuota(res: Response, serial: string, org: string, request: { cores: number; memoryMiB: number; diskGiB?: number }, to: VmSize): Promise<boolean> {
    if (!quotaFor(ctx.quotas, org)) return false;
    const grown = sizeOf(to);
    const now = sizeOf(request);
    if (grown.cores <= now.cores && grown.memory_mib <= now.memory_mib && grown.disk_gib <= now.disk_gib) return false;
    const excess = await quotaExcess(ctx, org, grown, { serial });
    if (!excess) return false;
    quotaExceeded(res, excess);
    return true;
  }

  /** One operation as the request records it: where a 202's (or a lost answer's) outcome appears. */
  router.get('/:serial/operations/:operation_id', async (req, res) => {
    const principal = permit(res, 'read');
    if (!principal) return;
    const path = operationParams.safeParse(req.params);
    if (!path.success) return badRequest(res, path.error, 'path');
    const { serial, operation_id: id } = path.data;
    if (!(await findRequest(ctx, res, principal, serial))) return;
    try {
      const record = await ctx.temporal(() => ctx.client.workflow.getHandle(requestWorkflowId(serial)).query(statusQuery));
      const operation = record.operations?.find((o) => o.id === id);
      if (!operation) return problem(res, 404, 'not found', `request ${serial} has no operation ${id}: it was never accepted (send it again), or it is older than the operations the request keeps`);
      const power = record.device.state === 'running' || record.device.state === 'stopped' ? record.device.state : undefined;
      res.json(toOperationAnswer({ serial, status: record.status, operation, node: record.device.node, power, snapshots: record.snapshots ?? [] }));
    } catch (err) {
      sendTemporalError(res, err, serial);
    }
  });

  router.get('/:serial/snapshots', async (req, res) => {
    const principal = permit(res, 'read');
    if (!principal) return;
    const path = serialParam.safeParse(req.params);
    if (!path.success) return badRequest(res, path.error, 'path');
    const { serial } = path.data;
    if (!(await findRequest(ctx, res, principal, serial))) return;
    try {
      const record = await ctx.temporal(() => ctx.client.workflow.getHandle(requestWorkflowId(serial)).query(statusQuery));
      res.json({ serial, limit: snapshotLimitOf(ctx.policy), snapshots: (record.snapshots ?? []).map(toSnapshot) });
    } catch (err) {
      sendTemporalError(res, err, serial);
    }
  });

  return router;
}

/**
 * The operation's id: from the caller's Idempotency-Key (scoped like a submission's, so two orgs never meet, and
 * hashed: the workflow's ids are short), else new.
 */
function operationId(principal: Principal, key: string | undefined): string {
  if (key === undefined) return `r-${randomUUID()}`;
  return `k-${createHash('sha256')
    .update(`${idempotencyScope(principal)}\n${key}`)
    .digest('hex')
    .slice(0, 32)}`;
}
