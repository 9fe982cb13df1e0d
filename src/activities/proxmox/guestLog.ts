import { PveApiError, type PveClient } from '../../clients/pve';
import { CLOUD_INIT_LOG, guestLogTail } from '../../domain/guestLog';
import type { VmRef } from './power';

/** Well inside the waits' 30 s heartbeat timeout: a stuck agent must not turn the wait's failure into a retry. */
const LOG_READ_TIMEOUT_MS = 10_000;

/** What a wait that timed out tells about the guest: its cloud-init log's tail, or why that could not be read. */
export interface GuestLogReport {
  /** One sentence (and the tail) for the failure's message. */
  text: string;
  /** The tail, redacted; absent when the log could not be read. */
  tail?: string;
  /** Why the log could not be read. */
  unreadable?: string;
}

/**
 * Reads the tail of the guest's cloud-init log through its agent, for the message of a build that waited in vain.
 * Never throws: the wait's own failure is what the operator must see, the log only explains it.
 */
export async function cloudInitLogReport(pve: Pick<PveClient, 'readGuestFile'>, ref: Pick<VmRef, 'node' | 'vmid'>): Promise<GuestLogReport> {
  const bound = AbortSignal.timeout(LOG_READ_TIMEOUT_MS);
  try {
    const file = await pve.readGuestFile(ref.node, ref.vmid, CLOUD_INIT_LOG, bound);
    const tail = guestLogTail(file.content);
    if (!tail) return { text: `The guest's cloud-init log (${CLOUD_INIT_LOG}) is empty.`, tail };
    return { text: `The guest's cloud-init log (${CLOUD_INIT_LOG}) ends:\n${tail}`, tail };
  } catch (err) {
    const unreadable = bound.aborted ? `no answer within ${LOG_READ_TIMEOUT_MS / 1000} s` : err instanceof PveApiError ? err.pveMessage || err.message : err instanceof Error ? err.message : String(err);
    return { text: `The guest's cloud-init log (${CLOUD_INIT_LOG}) could not be read through the guest agent: ${unreadable}.`, unreadable };
  }
}
