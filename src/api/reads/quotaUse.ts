import { OrgKey, RequestStatusKey, SerialKey, ClassIdKey } from '../../contracts/searchAttributes';
import { add, excessOf, holdsQuota, noUsage, quotaFor, type QuotaExcess, type Usage } from '../../domain/quotas';
import { taskQueueClause } from '../../domain/instanceScope';
import type { ApiContext } from '../http/context';
import { statedQuotaSize } from '../../contracts/memos';

/** What the count leaves out: a request being approved (it is the demand), a class whose earlier try made members. */
export interface Leaving {
  serial?: string;
  classId?: string;
}

/**
 * What the org's open requests hold, from Temporal's visibility alone: the running vmRequest workflows of this
 * instance (its task queue) for the org, each counted at the size its memo carries, except those whose status has
 * released their VM (see holdsQuota). One listing, however many requests: the sizes come with the list.
 */
export async function usageOf(ctx: ApiContext, org: string, leaving: Leaving = {}): Promise<Usage> {
  const holding = await holdingRequests(ctx, org);
  return holding.filter((r) => !(leaving.serial !== undefined && r.serial === leaving.serial) && !(leaving.classId !== undefined && r.classId === leaving.classId)).reduce((use, r) => add(use, r.size), noUsage);
}

interface Holding {
  serial: string | undefined;
  classId: string | undefined;
  size: Usage;
}

async function holdingRequests(ctx: ApiContext, org: string): Promise<Holding[]> {
  const query = `WorkflowType = "vmRequest" AND ${taskQueueClause(ctx.taskQueue)} AND ExecutionStatus = "Running" AND ${OrgKey.name} = ${literal(org)}`;
  return ctx.temporal(async () => {
    const out: Holding[] = [];
    for await (const w of ctx.client.workflow.list({ query, pageSize: 1000 })) {
      const sa = w.typedSearchAttributes;
      if (holdsQuota(sa.get(RequestStatusKey))) out.push({ serial: sa.get(SerialKey), classId: sa.get(ClassIdKey), size: sizeIn(w.memo) });
    }
    return out;
  });
}

/**
 * At approval (and at a rebuild, which builds a VM again), again: the quota the request would exceed on top of the org's other open requests. It held quota
 * since its submission, so this refuses only when the org filled up meanwhile past what the submission saw (two
 * submissions at once each counting without the other, a request started around the API) or the quota was lowered.
 */
export async function approvalQuotaExcess(ctx: ApiContext, org: string, serial: string, size: Usage = { ...noUsage, vms: 1 }): Promise<QuotaExcess | undefined> {
  const quota = quotaFor(ctx.quotas, org);
  if (!quota) return undefined;
  const holding = await holdingRequests(ctx, org);
  // A cancelled request released what it held: a rebuild asks for its whole size again.
  const own = holding.find((r) => r.serial === serial)?.size ?? size;
  const others = holding.filter((r) => r.serial !== serial).reduce((use, r) => add(use, r.size), noUsage);
  return excessOf(org, quota, others, own);
}

/** The first quota of `org` that `demand` would exceed on top of what its open requests hold; undefined: it fits. */
export async function quotaExcess(ctx: ApiContext, org: string, demand: Usage, leaving: Leaving = {}): Promise<QuotaExcess | undefined> {
  const quota = quotaFor(ctx.quotas, org);
  if (!quota) return undefined;
  return excessOf(org, quota, await usageOf(ctx, org, leaving), demand);
}

/** The size a request holds: its memo's; one started before sizes were kept in the memo still holds one VM. */
export function sizeIn(memo: Record<string, unknown> | undefined): Usage {
  return statedQuotaSize(memo) ?? { ...noUsage, vms: 1 };
}

function literal(value: string): string {
  if (/["'\\\n\r]/.test(value)) throw new Error(`refusing a visibility query value with quotes or backslashes: ${JSON.stringify(value)}`);
  return `"${value}"`;
}
