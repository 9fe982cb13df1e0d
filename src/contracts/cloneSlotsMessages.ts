import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { SlotAsk } from '../domain/cloneSlotGrant';
import type { PlacementNeed, PlacementOffer } from '../domain/placementReservation';

/**
 * A build's ask to the clone-slots coordinator: where it may go (the coordinator reserves one place for it at once)
 * and what its clone loads. The coordinator answers with `cloneSlotGrantedSignal` to the build once the slot is its.
 */
export interface CloneSlotRequest extends SlotAsk {
  offers: PlacementOffer[];
  need: PlacementNeed;
  /** The pool's running VMs as the placement saw them (`node/vmid`): reservations of these are counted by the cluster. */
  running: string[];
  /** After this long an unreleased slot is presumed abandoned (its build was terminated). */
  ttlMs: number;
}

/** The coordinator to a build: its place and its clone slot. */
export interface CloneSlotGrant {
  node: string;
  cloneOn?: string;
  /** How long the ask waited, in workflow time. */
  waitedMs: number;
}

export interface CloneSlotsView {
  held: Array<{ holder: string; keys: string[] }>;
  waiting: Array<{ holder: string; keys: string[]; since: string }>;
  reserved: Array<{ holder: string; node: string; vmid?: number }>;
}

/** Asks for a place and a clone slot; asking again while waiting or holding changes nothing. */
export const requestCloneSlotSignal = defineSignal<[CloneSlotRequest]>('requestCloneSlot');
/** Frees the holder's clone slot once its clone ended; its place stays reserved (for `vmid`) until the cluster counts the VM. */
export const releaseCloneSlotSignal = defineSignal<[{ holder: string; vmid?: number }]>('releaseCloneSlot');
/** The build ended: frees its slot, withdraws its ask, ends its reservation. Unknown holders are ignored. */
export const releasePlacementSignal = defineSignal<[{ holder: string }]>('releasePlacement');
/** Sent by the coordinator to the build that asked. */
export const cloneSlotGrantedSignal = defineSignal<[CloneSlotGrant]>('cloneSlotGranted');
export const cloneSlotsQuery = defineQuery<CloneSlotsView>('cloneSlots');
