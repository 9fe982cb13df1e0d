import { Router } from 'express';
import { permit } from '../auth/authenticate';
import type { ApiContext } from '../http/context';
import { orgOf } from '../auth/permissions';
import { currentCatalogue } from '../catalogue/imageCatalogue';
import { problem } from '../http/problems';
import { sendTemporalError } from '../http/temporalErrors';

/**
 * `GET /api/templates`: the templates in the pool as the newest completed clusterSync run saw them. An operator sees
 * the pool; a requester or an admin only the templates behind the images offered to their organisation (GET
 * /api/images), as a template is what an image is built from.
 */
export function templateRoutes(ctx: ApiContext): Router {
  const router = Router();
  router.get('/', async (_req, res) => {
    const principal = permit(res, 'templates');
    if (!principal) return;
    try {
      const catalogue = await currentCatalogue(ctx);
      if (!catalogue) {
        return problem(res, 503, 'not ready', 'no cluster sync has completed yet: templates are listed after the first sync run (every SYNC_INTERVAL_S seconds)');
      }
      const org = orgOf(principal);
      const behindOffered = new Set(catalogue.images.filter((i) => !i.orgs || org === undefined || i.orgs.includes(org)).map((i) => i.templateVmid));
      res.json({ synced_at: catalogue.at, templates: org === undefined ? catalogue.templates : catalogue.templates.filter((t) => behindOffered.has(t.vmid)) });
    } catch (err) {
      sendTemporalError(res, err);
    }
  });
  return router;
}
