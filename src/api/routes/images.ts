import { Router } from 'express';
import type { Image } from '../../domain/imageCatalogue';
import { permit } from '../auth/authenticate';
import { orgOf } from '../auth/permissions';
import type { ApiContext } from '../http/context';
import { currentCatalogue } from '../catalogue/imageCatalogue';
import { problem } from '../http/problems';
import { sendTemporalError } from '../http/temporalErrors';

/** An image in the wire's words. */
export function imageAnswer(image: Image, defaultTemplateVmid: number) {
  return {
    name: image.name,
    ...(image.os ? { os: image.os } : {}),
    ...(image.description ? { description: image.description } : {}),
    template_vmid: image.templateVmid,
    template_name: image.templateName,
    node: image.node,
    ...(image.templates ? { templates: image.templates } : {}),
    min_cores: image.minimum.cores,
    min_memory_mib: image.minimum.memoryMiB,
    min_disk_gib: image.minimum.diskGiB,
    ...(image.orgs ? { orgs: image.orgs } : {}),
    default: image.templateVmid === defaultTemplateVmid,
  };
}

/**
 * `GET /api/images`: the images a submission may name, as of the newest completed cluster sync. A requester or an
 * admin sees the images offered to their organisation; an operator sees them all, with the organisations they are
 * reserved to.
 */
export function imageRoutes(ctx: ApiContext): Router {
  const router = Router();
  router.get('/', async (_req, res) => {
    const principal = permit(res, 'images');
    if (!principal) return;
    try {
      const catalogue = await currentCatalogue(ctx);
      if (!catalogue) {
        return problem(res, 503, 'not ready', 'no cluster sync has completed yet: images are listed after the first sync run (every SYNC_INTERVAL_S seconds)');
      }
      const org = orgOf(principal);
      const visible = catalogue.images.filter((i) => org === undefined || !i.orgs || i.orgs.includes(org));
      res.json({
        synced_at: catalogue.at,
        images: visible.map((i) => {
          const { orgs, ...answer } = imageAnswer(i, ctx.choices.defaultTemplateVmid);
          return org === undefined && orgs ? { ...answer, orgs } : answer;
        }),
      });
    } catch (err) {
      sendTemporalError(res, err);
    }
  });
  return router;
}
