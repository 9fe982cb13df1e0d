import { choiceLimitRefusals } from '../../domain/choiceLimits';
import type { ChoiceRefusal } from '../../domain/choiceRules';
import type { CloudInitChoices } from '../../domain/cloudInitChoices';
import { imageRefusals } from '../../domain/imageCatalogue';
import { networkRefusal, type NetworkChoice } from '../../domain/networks';
import type { Response } from 'express';
import type { ApiContext } from '../http/context';
import { currentCatalogue } from '../catalogue/imageCatalogue';
import { badRequestIssues, problem } from '../http/problems';
import { fromWire } from '../../contracts/requestWire';
import type { CreateDeviceRequestBody } from '../../contracts/apiSchemas';
import { sendTemporalError } from '../http/temporalErrors';

/** The parts of a request the image and the choices are checked against (the domain's names). */
export interface ChoicesAsked {
  org: string;
  cores: number;
  memoryMiB: number;
  diskGiB?: number;
  image?: string;
  network?: NetworkChoice;
  cloudInit?: CloudInitChoices;
}

export type ChoiceVerdict =
  { ok: true; resolved: { templateVmid?: number; imageTemplates?: Array<{ node: string; vmid: number }>; diskGiB?: number } } | { ok: false; issues: ChoiceRefusal[] } | { ok: false; notReady: string };

/**
 * The intake's checks of a request's image and choices against the configuration and the catalogue, before anything
 * is started: the network on the allowed list, the sizes and counts within the limits, the image known, offered to
 * the org and its minimums met. An accepted image resolves to its template (what the build clones) and, when the
 * request asks no disk size, to the image's minimum disk.
 *
 * A request that names no image is built from the default template (PVE_TEMPLATE_VMID); when the catalogue holds an
 * image of it, that image's rules apply too.
 */
export async function checkChoices(ctx: Pick<ApiContext, 'client' | 'taskQueue' | 'temporal' | 'choices'>, r: ChoicesAsked): Promise<ChoiceVerdict> {
  const issues: ChoiceRefusal[] = [];
  if (r.network) {
    const refused = networkRefusal(ctx.choices.networks, r.network, r.org);
    if (refused) issues.push(refused);
  }
  issues.push(...choiceLimitRefusals(ctx.choices.limits, r));
  if (issues.length) return { ok: false, issues };

  let catalogue: Awaited<ReturnType<typeof currentCatalogue>>;
  try {
    catalogue = await currentCatalogue(ctx);
  } catch (err) {
    // The default image's rules are checked when they can be: a request naming no image never fails on the catalogue.
    if (r.image === undefined) return { ok: true, resolved: {} };
    throw err;
  }
  if (!catalogue) {
    if (r.image === undefined) return { ok: true, resolved: {} };
    return {
      ok: false,
      notReady: `the image catalogue comes from the cluster sync and none has completed yet (every ${ctx.choices.syncIntervalS} s): image ${r.image} cannot be checked. Retry after that; nothing was created.`,
    };
  }
  const image = r.image === undefined ? catalogue.images.find((i) => i.templateVmid === ctx.choices.defaultTemplateVmid) : catalogue.images.find((i) => i.name === r.image);
  if (!image) {
    if (r.image === undefined) return { ok: true, resolved: {} };
    const missing = catalogue.missing.find((c) => c.name === r.image);
    const offered = catalogue.images.filter((i) => !i.orgs || i.orgs.includes(r.org)).map((i) => i.name);
    return {
      ok: false,
      issues: [
        missing
          ? {
              field: 'image',
              reason: `image ${r.image} is configured, but its template ${missing.template} is not in the pool (as of the cluster sync at ${catalogue.at}); an operator must restore it`,
              rule: 'image-template-missing',
            }
          : { field: 'image', reason: `no image ${r.image}; images: ${offered.join(', ') || 'none'} (GET /api/images)`, rule: 'image-unknown' },
      ],
    };
  }
  const refused = imageRefusals(image, r);
  if (refused.length) return { ok: false, issues: refused.map((i) => (r.image === undefined && i.field === 'image' ? { ...i, reason: `${i.reason} (the default image; name another with image)` } : i)) };
  const diskGiB = r.diskGiB === undefined && image.minimum.diskGiB > 0 ? image.minimum.diskGiB : undefined;
  return { ok: true, resolved: { templateVmid: image.templateVmid, ...(image.templates ? { imageTemplates: image.templates } : {}), ...(diskGiB !== undefined ? { diskGiB } : {}) } };
}

export type ResolvedChoices = Extract<ChoiceVerdict, { ok: true }>['resolved'];

/**
 * The checks above for a parsed submission (a request, a class, a webhook delivery), answering the refusal itself:
 * the resolved template and disk, or undefined once a 400 (or a 503 before the first sync) has been sent.
 */
export async function intakeChoices(ctx: ApiContext, res: Response, body: CreateDeviceRequestBody): Promise<ResolvedChoices | undefined> {
  const r = fromWire(body);
  let verdict: ChoiceVerdict;
  try {
    verdict = await checkChoices(ctx, { org: body.client, cores: body.cores, memoryMiB: body.memory_mib, diskGiB: r.diskGiB, image: r.image, network: r.network, cloudInit: r.cloudInit });
  } catch (err) {
    sendTemporalError(res, err);
    return undefined;
  }
  if (verdict.ok) return verdict.resolved;
  if ('notReady' in verdict) {
    res.setHeader('Retry-After', String(ctx.choices.syncIntervalS));
    problem(res, 503, 'not ready', verdict.notReady);
  } else badRequestIssues(res, verdict.issues);
  return undefined;
}

/** The body as the request will be counted by a quota: the disk it will have once the image's minimum is applied. */
export function withResolvedDisk<B extends { disk_gib?: number }>(body: B, resolved: ResolvedChoices): B {
  return body.disk_gib === undefined && resolved.diskGiB !== undefined ? { ...body, disk_gib: resolved.diskGiB } : body;
}
