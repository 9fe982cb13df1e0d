import { z } from 'zod';
import { checksumAlgorithms, diskImageExtensions, type DiskImageExtension } from '../../contracts/imageImport';
import { configuredImageSchema, imageNameSchema } from '../../domain/imageCatalogue';
import { imageTemplatesPerNodeSchema } from '../../contracts/apiSchemas';

/**
 * The catalogue's wire shapes: an import's body, an image's update, an import's progress. The minimums and orgs are
 * the configuration's own fields (domain/imageCatalogue's configuredImageSchema), so PVEFLOW_IMAGES and the API
 * accept the same values.
 */

/** How many hex digits each algorithm's digest has: a checksum of another length is a typo, refused before any download. */
export const checksumHexLength: Record<(typeof checksumAlgorithms)[number], number> = { md5: 32, sha1: 40, sha224: 56, sha256: 64, sha384: 96, sha512: 128 };

/** A Proxmox storage id (pve-storage-id) and volume id (`storage:import/file`). */
const storageId = z.string().regex(/^[a-zA-Z][a-zA-Z0-9\-_.]*[a-zA-Z0-9]$/, 'a Proxmox storage id');
const volumeId = z.string().regex(/^[a-zA-Z][a-zA-Z0-9\-_.]*[a-zA-Z0-9]:[^\s]+$/, 'a Proxmox volume id such as local:import/debian-12.qcow2');

const { min_cores, min_memory_mib, min_disk_gib, orgs, os, description } = configuredImageSchema.shape;

export const imageImportBody = z
  .strictObject({
    name: imageNameSchema.meta({ description: 'The image name submissions use; refused with 409 when an image (or a running import) has it.', example: 'debian-12' }),
    os: os.unwrap().meta({ description: 'The operating system, as requesters read it.', example: 'Debian 12' }),
    description,
    url: z.string().max(2048).optional().meta({
      description:
        'http(s) URL of a qcow2, raw (.img) or vmdk disk image that the Proxmox node downloads (rule image-url: http or https, a file of one of those extensions; loopback and link-local hosts are refused in production unless PVEFLOW_IMAGE_URLS_ALLOW_LOCAL=true). Rule image-source: give either `url` (with `checksum` and `checksum_algorithm`) or `volume`.',
      example: 'https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2',
    }),
    checksum: z
      .string()
      .regex(/^[0-9a-fA-F]+$/, 'hex digits')
      .optional()
      .meta({
        description:
          'The expected digest of the file, in hex; required with `url` (rule image-source) and as long as its algorithm makes it (rule checksum-length: 32 hex digits for md5 … 128 for sha512). Proxmox verifies it and fails the import on a mismatch.',
      }),
    checksum_algorithm: z.enum(checksumAlgorithms).optional().meta({ description: 'Required with `url`.' }),
    volume: volumeId.optional().meta({ description: 'Instead of `url`: a disk image already on a storage (`storage:import/file.qcow2`).' }),
    node: z
      .string()
      .regex(/^[a-zA-Z0-9-]{1,63}$/)
      .optional()
      .meta({ description: 'The node that holds the template; absent: the first online node PVE_NODE_SELECTOR allows.' }),
    download_storage: storageId.default('local').meta({ description: 'Where the file is downloaded (a storage with `import` content). A shared one is written once for the cluster.' }),
    disk_storage: storageId.optional().meta({ description: "Where the template's disk and cloud-init drive are made; absent: PVE_TARGET_STORAGE, else local-lvm." }),
    min_cores,
    min_memory_mib,
    min_disk_gib: min_disk_gib.meta({ description: "At least the image's own disk: a smaller one fails the import, naming the disk's size." }),
    orgs,
  })
  .meta({ id: 'ImageImport' });
export type ImageImportBody = z.infer<typeof imageImportBody>;

export const imageUpdateBody = z
  .strictObject({
    description,
    min_cores,
    min_memory_mib,
    min_disk_gib,
    orgs: orgs.unwrap().nullable().optional().meta({ description: 'The organisations that may use it; null: every one.' }),
  })
  .refine((b) => Object.keys(b).length > 0, { message: 'name at least one of description, min_cores, min_memory_mib, min_disk_gib, orgs' })
  // The refinement as the document states it: an empty update is refused.
  .meta({ id: 'ImageUpdate', minProperties: 1 });

export const imageNameParam = z.strictObject({ name: imageNameSchema });

export const catalogueImageSchema = z
  .object({
    name: z.string(),
    os: z.string().optional(),
    description: z.string().optional(),
    template: z.union([z.number().int(), z.string()]).meta({ description: 'Its template: a VMID, or a name in the pool.' }),
    template_vmid: z.number().int().optional().meta({ description: 'As the newest cluster sync found it; absent: not in the pool (yet).' }),
    node: z.string().optional(),
    templates: imageTemplatesPerNodeSchema,
    min_cores: z.number().int().optional(),
    min_memory_mib: z.number().int().optional(),
    min_disk_gib: z.number().int().optional(),
    orgs: z.array(z.string()).optional().meta({ description: 'Operators only.' }),
    retired: z.boolean(),
    origin: z.enum(['seed', 'import']).meta({ description: 'seed: PVEFLOW_IMAGES; import: an image import.' }),
    added_at: z.string(),
  })
  .meta({ id: 'CatalogueImage' });

export const importStatusSchema = z
  .object({
    name: z.string(),
    workflow_id: z.string(),
    state: z.enum(['running', 'completed', 'failed', 'cancelling', 'cancelled']),
    stage: z.string(),
    bytes: z.number().int().optional(),
    total_bytes: z.number().int().optional(),
    node: z.string().optional(),
    template_vmid: z.number().int().optional().meta({ description: 'The first template made (the only one on a shared storage).' }),
    templates: z
      .array(z.object({ node: z.string(), vmid: z.number().int() }))
      .optional()
      .meta({ description: 'The templates made so far, one per node when the disk storage is local to each node.' }),
    error: z.string().optional(),
    leftovers: z.array(z.string()),
    log: z.array(z.object({ at: z.string(), stage: z.string(), message: z.string() })),
    started_at: z.string(),
    ended_at: z.string().optional(),
  })
  .meta({ id: 'ImageImportStatus' });

/** The disk image format a URL names by its file's extension; undefined: not one Proxmox imports. */
export function diskImageExtensionOf(url: URL): DiskImageExtension | undefined {
  const ext = /\.([a-z0-9]+)$/i.exec(url.pathname)?.[1]?.toLowerCase();
  return (diskImageExtensions as readonly string[]).includes(ext ?? '') ? (ext as DiskImageExtension) : undefined;
}
