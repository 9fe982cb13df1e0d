import { z } from 'zod';

/**
 * Response shapes of the PVE calls pveflow makes, only the fields it uses. Real PVE sends numbers as strings in
 * several places (Perl's JSON encoder; proxmox-behaviour.md §1.4), so every numeric field accepts both.
 */
const num = z.union([z.number(), z.string().regex(/^-?\d+(\.\d+)?$/)]).transform(Number);
const flag = z.union([z.number(), z.boolean(), z.string()]).transform((v) => v === 1 || v === true || v === '1');

export const versionSchema = z.object({ version: z.string(), release: z.string().optional() }).loose();

export const nodeSchema = z
  .object({
    node: z.string(),
    status: z.string(),
    cpu: num.optional(),
    maxcpu: num.optional(),
    mem: num.optional(),
    maxmem: num.optional(),
  })
  .loose();
export type PveNode = z.infer<typeof nodeSchema>;

export const clusterResourceSchema = z
  .object({
    id: z.string(),
    type: z.string(),
    node: z.string().optional(),
    status: z.string().optional(),
    vmid: num.optional(),
    name: z.string().optional(),
    pool: z.string().optional(),
    tags: z.string().optional(),
    lock: z.string().optional(),
    template: flag.optional(),
    cpu: num.optional(),
    maxcpu: num.optional(),
    mem: num.optional(),
    maxmem: num.optional(),
    disk: num.optional(),
    maxdisk: num.optional(),
    storage: z.string().optional(),
    shared: flag.optional(),
    content: z.string().optional(),
  })
  .loose();
export type ClusterResource = z.infer<typeof clusterResourceSchema>;

export const taskStatusSchema = z
  .object({
    upid: z.string(),
    node: z.string(),
    status: z.enum(['running', 'stopped']),
    exitstatus: z.string().optional(),
    type: z.string(),
    id: z.string().optional(),
  })
  .loose();
export type TaskStatus = z.infer<typeof taskStatusSchema>;

export const taskListSchema = z.array(z.object({ upid: z.string(), node: z.string(), type: z.string(), status: z.string().optional(), id: z.string().optional() }).loose());
export type TaskListEntry = z.infer<typeof taskListSchema>[number];

export const taskLogSchema = z.array(z.object({ n: num, t: z.string() }).loose());

export const vmConfigSchema = z.record(z.string(), z.unknown()).transform((cfg) => ({
  raw: cfg,
  name: typeof cfg.name === 'string' ? cfg.name : undefined,
  description: typeof cfg.description === 'string' ? cfg.description : undefined,
  tags: typeof cfg.tags === 'string' ? cfg.tags : undefined,
  lock: typeof cfg.lock === 'string' ? cfg.lock : undefined,
  template: cfg.template === 1 || cfg.template === '1',
  digest: typeof cfg.digest === 'string' ? cfg.digest : undefined,
}));
export type VmConfig = z.infer<typeof vmConfigSchema>;

export const vmStatusSchema = z
  .object({
    vmid: num.optional(),
    status: z.enum(['running', 'stopped']),
    qmpstatus: z.string().optional(),
    lock: z.string().optional(),
    agent: flag.optional(),
    uptime: num.optional(),
  })
  .loose();
export type VmStatus = z.infer<typeof vmStatusSchema>;

export const guestInterfacesSchema = z.object({
  result: z.array(
    z
      .object({
        name: z.string(),
        'hardware-address': z.string().optional(),
        'ip-addresses': z.array(z.object({ 'ip-address': z.string(), 'ip-address-type': z.string(), prefix: num.optional() }).loose()).optional(),
      })
      .loose(),
  ),
});
export type GuestInterfaces = z.infer<typeof guestInterfacesSchema>;

/** `GET .../agent/file-read`: the file's content (decoded), `truncated` when more was there than was read. */
export const guestFileSchema = z.object({ content: z.string(), truncated: flag.optional() }).loose();
export type GuestFile = z.infer<typeof guestFileSchema>;

export const upidSchema = z.string();
/** Synchronous calls that answer `{"data": null}` (HA resource create/delete). */
export const noDataSchema = z
  .null()
  .or(z.undefined())
  .transform(() => undefined);
export const nextIdSchema = num;

/** `GET .../snapshot`: the VM's snapshots and, last, `current` (where the VM is now). */
export const snapshotListSchema = z.array(z.object({ name: z.string(), snaptime: num.optional(), vmstate: flag.optional(), description: z.string().optional(), parent: z.string().optional() }).loose());
export type SnapshotEntry = z.infer<typeof snapshotListSchema>[number];

/** `GET .../pending`: each key's value now, the value waiting for the next start, or its pending deletion. */
export const pendingConfigSchema = z.array(z.object({ key: z.string(), value: z.unknown().optional(), pending: z.unknown().optional(), delete: flag.optional() }).loose());
export type PendingConfigEntry = z.infer<typeof pendingConfigSchema>[number];

/** A volume of a storage's content listing (`import` files, disk images, ISOs, ...): `size` in bytes. */
export const storageVolumeSchema = z.object({ volid: z.string(), format: z.string().optional(), size: num.optional(), content: z.string().optional(), vmid: num.optional() }).loose();
export type StorageVolume = z.infer<typeof storageVolumeSchema>;
