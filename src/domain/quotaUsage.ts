/**
 * What requests hold against the org quotas (domain/quotas): plain arithmetic without zod, so that the request
 * workflow, which recounts a request's size after a day-2 resize, bundles none of the configuration's schema.
 */
export type QuotaName = 'vms' | 'cores' | 'memory_mib' | 'disk_gib';

/** What one request holds, or what several hold together. */
export type Usage = Record<QuotaName, number>;

export const noUsage: Usage = { vms: 0, cores: 0, memory_mib: 0, disk_gib: 0 };

/**
 * The size a request is counted at: one VM, its cores and memory, and the disk it asks for (a request that names no
 * disk size is counted at 0 GiB: the template's own disk is not known when the request is submitted).
 */
export function sizeOf(r: { cores: number; memoryMiB: number; diskGiB?: number }): Usage {
  return { vms: 1, cores: r.cores, memory_mib: r.memoryMiB, disk_gib: r.diskGiB ?? 0 };
}

export function add(a: Usage, b: Usage): Usage {
  return { vms: a.vms + b.vms, cores: a.cores + b.cores, memory_mib: a.memory_mib + b.memory_mib, disk_gib: a.disk_gib + b.disk_gib };
}

export function times(u: Usage, n: number): Usage {
  return { vms: u.vms * n, cores: u.cores * n, memory_mib: u.memory_mib * n, disk_gib: u.disk_gib * n };
}
