import { z } from 'zod';
import type { ChoiceRefusal } from './choiceRules';
import { requestLimits } from './requestLimits';

/**
 * The image catalogue: the named images a request may be built from. An image is a template in pveflow's pool (as
 * the cluster sync saw it), with what a requester needs to choose it (its OS) and what it needs to run (minimum cores,
 * memory and disk), optionally reserved to some organisations. The pool gives the templates; the configuration
 * (PVEFLOW_IMAGES / PVEFLOW_IMAGES_FILE) names, describes and restricts them.
 */

export const imageNameSchema = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'lower-case letters, digits and . _ - (at most 63)');

/** One configured image, in the configuration's words (snake_case, as in the HTTP API). */
export const configuredImageSchema = z.strictObject({
  name: imageNameSchema,
  /** The template: its VMID, or its name in the pool. */
  template: z.union([z.number().int().min(100).max(999_999_999), z.string().min(1).max(128)]),
  os: z.string().min(1).max(64).optional(),
  description: z.string().max(500).optional(),
  min_cores: z.number().int().min(requestLimits.cores.min).max(requestLimits.cores.max).optional(),
  min_memory_mib: z.number().int().min(requestLimits.memoryMiB.min).max(requestLimits.memoryMiB.max).optional(),
  min_disk_gib: z.number().int().min(1).max(16_384).optional(),
  /** Only these organisations may use the image; absent: every one. */
  orgs: z.array(z.string().min(1).max(64)).min(1).optional(),
});

export type ConfiguredImage = z.infer<typeof configuredImageSchema>;

export const imagesConfigSchema = z
  .strictObject({ images: z.array(configuredImageSchema).max(500) })
  .refine((c) => new Set(c.images.map((i) => i.name)).size === c.images.length, { path: ['images'], message: 'image names must be unique' });

/** A template in the pool as the cluster sync reports it (contracts' TemplateInfo is this). */
export interface PoolTemplate {
  vmid: number;
  name: string;
  node: string;
  cores?: number;
  memoryMiB?: number;
  diskGiB?: number;
}

export interface Image {
  name: string;
  templateVmid: number;
  templateName: string;
  node: string;
  os?: string;
  description?: string;
  /** What a request on this image must at least ask for; the disk is never below the template's own. */
  minimum: { cores: number; memoryMiB: number; diskGiB: number };
  orgs?: string[];
  /** Offered to no new request (the catalogue retired it); requests that hold a VM of it keep it. */
  retired?: boolean;
  /**
   * Its templates, one per node, when it has more than one (an import onto storage local to each node): a build
   * clones the template of the node it is placed on. Absent: `templateVmid` alone.
   */
  templates?: Array<{ node: string; vmid: number }>;
}

/** What imageCatalogue reads of an entry beyond the configuration's words: an import's templates per node. */
type CatalogueInput = ConfiguredImage & { retired?: boolean; templates?: Array<{ vmid: number }> };

/** A pool template's name as an image name: Proxmox allows upper case and more length than an image name does. */
const imageNameOf = (templateName: string, vmid: number) => {
  const slug = templateName
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[^a-z0-9]+/, '')
    .slice(0, 63);
  return imageNameSchema.safeParse(slug).success ? slug : `template-${vmid}`;
};

/**
 * The catalogue from the pool's templates and the configured images. Without configuration every template is an
 * image named after it (a second template of the same name gets `-<vmid>`). With configuration only the configured
 * images are offered: an operator who curates a catalogue does not want every template of the pool offered too. A
 * configured image whose template is not in the pool is left out (and named by `missingImages`).
 */
export function imageCatalogue(templates: PoolTemplate[], configured?: CatalogueInput[], curated = configured !== undefined): Image[] {
  const fromTemplate = (t: PoolTemplate, name: string, c?: CatalogueInput): Image => {
    const templateDisk = Math.ceil(t.diskGiB ?? 0);
    // The pool's templates of the entry's list (where the pool holds them now, as the sync saw them).
    const perNode = (c?.templates ?? []).flatMap((r) => templates.filter((p) => p.vmid === r.vmid)).map((p) => ({ node: p.node, vmid: p.vmid }));
    return {
      name,
      templateVmid: t.vmid,
      templateName: t.name,
      node: t.node,
      ...(c?.os ? { os: c.os } : {}),
      ...(c?.description ? { description: c.description } : {}),
      minimum: {
        cores: c?.min_cores ?? requestLimits.cores.min,
        memoryMiB: c?.min_memory_mib ?? requestLimits.memoryMiB.min,
        diskGiB: Math.max(c?.min_disk_gib ?? 0, templateDisk),
      },
      ...(c?.orgs ? { orgs: c.orgs } : {}),
      ...(c?.retired ? { retired: true } : {}),
      ...(perNode.length > 1 ? { templates: perNode } : {}),
    };
  };
  const sorted = [...templates].sort((a, b) => a.vmid - b.vmid);
  if (!curated) {
    // Every template is an image; a configured (or imported) one is named and refined by its entry.
    const named = (configured ?? []).flatMap((c) => {
      const t = templateOf(sorted, c);
      return t ? [fromTemplate(t, c.name, c)] : [];
    });
    const seen = new Set<string>(named.map((i) => i.name));
    const covered = new Set(named.flatMap((i) => [i.templateVmid, ...(i.templates ?? []).map((t) => t.vmid)]));
    return [
      ...named,
      ...sorted
        .filter((t) => !covered.has(t.vmid))
        .map((t) => {
          let name = imageNameOf(t.name, t.vmid);
          if (seen.has(name)) name = `${name.slice(0, 50)}-${t.vmid}`;
          seen.add(name);
          return fromTemplate(t, name);
        }),
    ];
  }
  return (configured ?? []).flatMap((c) => {
    const t = templateOf(sorted, c);
    return t ? [fromTemplate(t, c.name, c)] : [];
  });
}

const templateOf = (templates: PoolTemplate[], c: ConfiguredImage) => templates.find((t) => (typeof c.template === 'number' ? t.vmid === c.template : t.name === c.template));

/** Configured images whose template the pool does not hold: a 400 says so rather than "unknown image". */
export function missingImages(templates: PoolTemplate[], configured: ConfiguredImage[] | undefined): ConfiguredImage[] {
  return (configured ?? []).filter((c) => !templateOf(templates, c));
}

/** Why a request for `org` with these resources may not use `image` (empty: it may). Fields are the wire's. */
export function imageRefusals(image: Image, r: { org: string; cores: number; memoryMiB: number; diskGiB?: number }): ChoiceRefusal[] {
  if (image.retired) return [{ field: 'image', reason: `image ${image.name} is retired: it is offered to no new request (GET /api/images lists the others)`, rule: 'image-retired' }];
  if (image.orgs && !image.orgs.includes(r.org)) return [{ field: 'image', reason: `image ${image.name} is not offered to ${r.org}`, rule: 'image-not-offered' }];
  const issues: ChoiceRefusal[] = [];
  const below = (field: string, asked: number, min: number, unit: string) => {
    if (asked < min) issues.push({ field, reason: `${asked}${unit} is below image ${image.name}'s minimum of ${min}${unit}`, rule: 'below-image-minimum' });
  };
  below('cores', r.cores, image.minimum.cores, '');
  below('memory_mib', r.memoryMiB, image.minimum.memoryMiB, ' MiB');
  if (r.diskGiB !== undefined) below('disk_gib', r.diskGiB, image.minimum.diskGiB, ' GiB');
  return issues;
}
