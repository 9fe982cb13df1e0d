import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';


export interface CloneSlotRequest {
  /** Who holds the slot: stable across retries of the same clone (`clone:<serial>:<vmid>`). */
  holder: string;
  /** What the clone loads: `node/<node>` and `storage/<sid>` (shared) or `storage/<sid>@<node>` (local). */
  keys: string[];
  /** The most clones at once per key; a key without a limit never waits. */
  limits: Record<string, number>;
  /** After this long an unreleased slot is presumed abandoned. */
  ttlMs: number;
}

export interface CloneSlotsView {
  held: Array<{ holder: string; keys: string[] }>;
  waiting: Array<{ holder: string; keys: string[]; since: string }>;
}

/** Completes once the slot is the holder's (`granted`), or with `granted: false` when it was withdrawn while waiting. */
export const acquireCloneSlotUpdate = defineUpdate<{ granted: boolean; waitedMs: number }, [CloneSlotRequest]>('acquireCloneSlot');
/**
 * Frees `from`'s slot and asks for one for `next` in the same workflow task, where a release and an ask took two:
 * answers at once whether `next` was granted; if not, `next` keeps its place in the queue and asks as usual.
 */
export const handOverCloneSlotUpdate = defineUpdate<{ granted: boolean }, [{ from: string; next: CloneSlotRequest }]>('handOverCloneSlot');
/** Frees a held slot, or withdraws a waiting request. Unknown holders are ignored. */
export const releaseCloneSlotSignal = defineSignal<[{ holder: string }]>('releaseCloneSlot');
export const cloneSlotsQuery = defineQuery<CloneSlotsView>('cloneSlots');
