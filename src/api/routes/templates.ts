import { Router } from 'express';
import { permit } from '../auth/authenticate';
import type { ApiContext } from '../context';
import { latestSyncResult } from '../latestSync';
import { problem } from '../problems';
import { sendTemporalError } from '../temporalErrors';

/** `GET /api/templates`: the templates in the pool as the newest completed clusterSync run saw them. */
export function templateRoutes(ctx: ApiContext): Router {
  const router = Router();
  router.get('/', async (_req, res) => {
    if (!permit(res, 'templates')) return;
    try {
      const result = await latestSyncResult(ctx);
      if (!result) {
        return problem(res, 503, 'not ready', 'no cluster sync has completed yet: templates are listed after the first sync run (every SYNC_INTERVAL_S seconds)');
      }
      res.json({ synced_at: result.at, templates: result.templates ?? [] });
    } catch (err) {
      sendTemporalError(res, err);
    }
  });
  return router;
}
