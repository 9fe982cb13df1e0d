import { Router } from 'express';
import type { ClusterSyncResult } from '../../contracts/types';
import { permit } from '../auth/authenticate';
import type { ApiContext } from '../context';
import { problem } from '../problems';
import { sendTemporalError } from '../temporalErrors';
import { taskQueueClause } from '../../temporal/instanceScope';

/** This instance's newest finished sync: visibility lists closed runs newest first (by close time). */
export function latestSyncQuery(taskQueue: string): string {
  return `WorkflowType = "clusterSync" AND ExecutionStatus = "Completed" AND ${taskQueueClause(taskQueue)}`;
}

/**
 * `GET /api/templates`: the templates in the pool as the newest completed clusterSync run saw them. No second copy
 * is kept anywhere: the run's result in Temporal is the answer, at most one sync interval old.
 */
export function templateRoutes(ctx: ApiContext): Router {
  const router = Router();
  router.get('/', async (_req, res) => {
    if (!permit(res, 'templates')) return;
    try {
      const latest = await ctx.temporal(async () => {
        for await (const run of ctx.client.workflow.list({ query: latestSyncQuery(ctx.taskQueue), pageSize: 1 })) return run;
        return undefined;
      });
      if (!latest) {
        return problem(res, 503, 'not ready', 'no cluster sync has completed yet: templates are listed after the first sync run (every SYNC_INTERVAL_S seconds)');
      }
      const result = await ctx.temporal(() => ctx.client.workflow.getHandle(latest.workflowId, latest.runId).result() as Promise<ClusterSyncResult>);
      res.json({ synced_at: result.at, templates: result.templates ?? [] });
    } catch (err) {
      sendTemporalError(res, err);
    }
  });
  return router;
}
