import type { ClusterSyncResult } from '../../contracts/types';
import type { ApiContext } from '../http/context';
import { taskQueueClause } from '../../domain/instanceScope';

/** This instance's newest finished sync: visibility lists closed runs newest first (by close time). */
export function latestSyncQuery(taskQueue: string): string {
  return `WorkflowType = "clusterSync" AND ExecutionStatus = "Completed" AND ${taskQueueClause(taskQueue)}`;
}

/**
 * The result of this instance's newest completed clusterSync run, or undefined before the first. No second copy is
 * kept anywhere: the run's result in Temporal is the answer, at most one sync interval old.
 */
export async function latestSyncResult(ctx: Pick<ApiContext, 'client' | 'taskQueue' | 'temporal'>): Promise<ClusterSyncResult | undefined> {
  const latest = await ctx.temporal(async () => {
    for await (const run of ctx.client.workflow.list({ query: latestSyncQuery(ctx.taskQueue), pageSize: 1 })) return run;
    return undefined;
  });
  if (!latest) return undefined;
  return ctx.temporal(() => ctx.client.workflow.getHandle(latest.workflowId, latest.runId).result() as Promise<ClusterSyncResult>);
}
