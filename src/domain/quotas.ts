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
export type { QuotaName } from './quotaUsage';

export const quotaNames: readonly (keyof Quota)[] = ['vms', 'cores', 'memory_mib', 'disk_gib'];

export { noUsage, sizeOf, add, times, type Usage } from './quotaUsage';
import type { QuotaName, Usage } from './quotaUsage';

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
