import type { Usage } from '../domain/quotaUsage';

/**
 * Memo keys a request's workflow carries for readers that list many requests at once (a memo comes with the list;
 * a query would cost one call per request). Written by the API at submission and by the workflow when a day-2
 * operation changes the request's size.
 */

/** The size a request is counted at by the org quotas (domain/quotas `sizeOf`). */
export const QUOTA_SIZE_MEMO = 'quotaSize';

/**
 * The size a request's memo states, read back the one way both its readers do (the API's quota count, the cluster
 * sync's size check); undefined when the memo holds none (a request started before sizes were kept there, or around
 * the API) or one that is not a size. A size is its cores and memory; a disk it does not state is 0 GiB, as
 * `sizeOf` counts a request that names none.
 */
export function statedQuotaSize(memo: Record<string, unknown> | undefined): Usage | undefined {
  const size = memo?.[QUOTA_SIZE_MEMO];
  if (typeof size !== 'object' || size === null) return undefined;
  const { cores, memory_mib, disk_gib } = size as Partial<Record<keyof Usage, unknown>>;
  const n = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
  return n(cores) && n(memory_mib) ? { vms: 1, cores, memory_mib, disk_gib: n(disk_gib) ? disk_gib : 0 } : undefined;
}

/** The image a request is built from (its name, if it named one) and the template its VM is cloned from. */
export const IMAGE_MEMO = 'image';
export interface ImageMemo {
  name?: string;
  templateVmid?: number;
}
