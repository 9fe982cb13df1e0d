import { upsertMemo } from '@temporalio/workflow';
import { QUOTA_SIZE_MEMO } from '../../contracts/memos';
import type { RequestRecord } from '../../contracts/types';
import type { VmSize } from '../../contracts/vmOperations';
import { sizeOf } from '../../domain/quotaUsage';
import type { VmRequest } from './request';

/**
 * The VM's size as the request states it: a rebuild builds it at that size, and what the org holds counts it. It
 * changes by a reconfigure, and follows Proxmox after a snapshot revert or a change made there directly (the sync).
 */

/** The request states the VM's size, and the quota memo the API counts the org's use by says the same. */
export function recordSize({ record }: Pick<VmRequest, 'record'>, size: Partial<VmSize>): void {
  record.request = {
    ...record.request,
    ...(size.cores !== undefined ? { cores: size.cores } : {}),
    ...(size.memoryMiB !== undefined ? { memoryMiB: size.memoryMiB } : {}),
    ...(size.diskGiB !== undefined ? { diskGiB: size.diskGiB } : {}),
  };
  // The size the API counts the org's quotas at (src/api/reads/quotaUse.ts reads this memo key).
  upsertMemo({ [QUOTA_SIZE_MEMO]: sizeOf(record.request) });
}

/** The size the record takes from Proxmox's: cores and memory as they are, the disk only where it grew. */
export function followed(record: RequestRecord, size: VmSize): Partial<VmSize> {
  const grew = size.diskGiB !== undefined && record.request.diskGiB !== undefined && size.diskGiB > record.request.diskGiB;
  return { cores: size.cores, memoryMiB: size.memoryMiB, ...(grew ? { diskGiB: size.diskGiB } : {}) };
}

/** What a size changes of the record's, in words, or undefined when nothing (a disk never shrinks on the record). */
export function resizedTo(record: RequestRecord, size: VmSize): string | undefined {
  const { cores, memoryMiB, diskGiB } = record.request;
  const changes = [
    size.cores !== cores ? `cores ${cores} → ${size.cores}` : undefined,
    size.memoryMiB !== memoryMiB ? `memory ${memoryMiB} → ${size.memoryMiB} MiB` : undefined,
    size.diskGiB !== undefined && diskGiB !== undefined && size.diskGiB > diskGiB ? `disk ${diskGiB} → ${size.diskGiB} GiB` : undefined,
  ].filter(Boolean);
  return changes.length ? `the request now states its size: ${changes.join(', ')}` : undefined;
}
