import { z } from 'zod';

/**
 * Quotas per organisation: how many VMs at once, and how many cores, MiB of memory and GiB of disk, one org's open
 * requests may hold together. Configured as JSON (PVEFLOW_QUOTAS), keyed by org, with `*` for every org not named;
 * a limit left out is no limit, and an org with no entry (and no `*`) is unbounded.
 */
const limit = z.number().int().min(0);

export const quotaSchema = z.strictObject({ vms: limit.optional(), cores: limit.optional(), memory_mib: limit.optional(), disk_gib: limit.optional() });

export const quotaConfigSchema = z.record(z.string().min(1), quotaSchema);

export type Quota = z.infer<typeof quotaSchema>;
export type QuotaConfig = z.infer<typeof quotaConfigSchema>;
export type QuotaName = keyof Quota;

export const quotaNames: readonly QuotaName[] = ['vms', 'cores', 'memory_mib', 'disk_gib'];

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

/**
 * Which requests hold quota: every request whose workflow still runs, except those whose VM is gone or never came —
 * Rejected, Expired, Completed, and Cancelled (a cancelled request's build has been undone; Cancelling still counts).
 * Pending counts: a submission reserves what it asks for, so an approval does not find the org full of requests
 * submitted after it.
 */
const released: ReadonlySet<string> = new Set(['Rejected', 'Expired', 'Completed', 'Cancelled']);

export function holdsQuota(status: string | undefined): boolean {
  return status === undefined || !released.has(status);
}

/** The org's quota: its own entry, else the `*` entry, else none. */
export function quotaFor(config: QuotaConfig, org: string): Quota | undefined {
  return config[org] ?? config['*'];
}

export interface QuotaExcess {
  org: string;
  quota: QuotaName;
  /** What the org's open requests hold now. */
  use: number;
  /** What the submission or approval would add. */
  asked: number;
  limit: number;
}

/** The first quota that `use` plus `demand` would exceed, or undefined when all hold. */
export function excessOf(org: string, quota: Quota | undefined, use: Usage, demand: Usage): QuotaExcess | undefined {
  if (!quota) return undefined;
  for (const name of quotaNames) {
    const max = quota[name];
    if (max !== undefined && use[name] + demand[name] > max) return { org, quota: name, use: use[name], asked: demand[name], limit: max };
  }
  return undefined;
}

const units: Record<QuotaName, string> = { vms: 'VMs', cores: 'cores', memory_mib: 'MiB of memory', disk_gib: 'GiB of disk' };

/** The refusal in words: which quota, the use, the ask and the limit, and what to do. */
export function describeExcess(e: QuotaExcess): string {
  return (
    `quota ${e.quota} of ${e.org} exceeded: its open requests hold ${e.use} ${units[e.quota]}, this would add ${e.asked}, the limit is ${e.limit}. ` +
    'Complete, cancel or reject open requests of the org first, or ask an operator to raise PVEFLOW_QUOTAS.'
  );
}
