import { condition, continueAsNew, getExternalWorkflowHandle, patched, setHandler, sleep, workflowInfo } from '@temporalio/workflow';
import { PATCHES } from './patches';
import { grantCloneSlots } from '../domain/cloneSlotGrant';
import { choosePlacementOffer, uncountedReservations, type PlacementReservation } from '../domain/placementReservation';
import { cloneSlotGrantedSignal, cloneSlotsQuery, releaseCloneSlotSignal, releasePlacementSignal, requestCloneSlotSignal, type CloneSlotRequest, type CloneSlotsView } from '../contracts/cloneSlotsMessages';

export interface HeldSlot {
  holder: string;
  keys: string[];
  /** Workflow time (ms) after which a holder that never released is presumed gone and its slot freed. */
  expiresAt: number;
}

export interface WaitingAsk extends CloneSlotRequest {
  since: number;
  node: string;
  cloneOn?: string;
}

export interface Reservation extends PlacementReservation {
  expiresAt: number;
}

export interface CloneSlotsInput {
  /** Carried over by continue-as-new. */
  held?: HeldSlot[];
  waiting?: WaitingAsk[];
  reserved?: Reservation[];
}

/** Keeps a run's history short: a new run after this many asks (or when Temporal suggests it). */
const ASKS_PER_RUN = 1000;
/** A place is reserved at most this long: a build that never ends (terminated) stops counting after it. */
const RESERVATION_TTL_MS = 2 * 3600_000;

/**
 * The coordinator of the builds of one deployment (`pveflow-clone-slots-<task queue>`), in the shape of Temporal's
 * mutex sample: a build signals its ask, the coordinator signals the grant back, the build signals the release.
 * It decides two things, one ask after the other:
 * - where the build goes: the best offer after the places reserved by builds whose VMs the cluster does not count yet
 *   (domain/placementReservation.ts), so that builds choosing at the same moment spread;
 * - when it may clone: clones at once per node and per storage (domain/cloneSlotGrant.ts), because Proxmox gives up
 *   on a storage lock after 10 s (proxmox-behaviour.md §5, §6.1).
 * Started by every worker at start-up (the composition root), continued as new to keep its history short.
 */
export async function cloneSlots(input: CloneSlotsInput = {}): Promise<void> {
  const held = new Map<string, HeldSlot>((input.held ?? []).map((h) => [h.holder, h]));
  const waiting: WaitingAsk[] = [...(input.waiting ?? [])];
  let reserved: Reservation[] = [...(input.reserved ?? [])];
  let asks = 0;
  /** Grants on their way to their builds: a new run starts only once they have landed. */
  let granting = 0;
  /**
   * Something changed that may free a slot. The handlers only record what they were told; the grants are decided once
   * per workflow task, after every signal that task brought: one task serves a burst of asks and releases.
   */
  let changed = false;

  const free = (holder: string) => {
    held.delete(holder);
    const i = waiting.findIndex((w) => w.holder === holder);
    if (i >= 0) waiting.splice(i, 1);
  };
  const grant = () => {
    changed = false;
    for (const ask of grantCloneSlots([...held.values()], waiting)) {
      const w = ask as WaitingAsk;
      waiting.splice(waiting.indexOf(w), 1);
      held.set(w.holder, { holder: w.holder, keys: w.keys, expiresAt: Date.now() + w.ttlMs });
      granting++;
      void getExternalWorkflowHandle(w.holder)
        .signal(cloneSlotGrantedSignal, { node: w.node, ...(w.cloneOn ? { cloneOn: w.cloneOn } : {}), waitedMs: Date.now() - w.since })
        // The build is gone (terminated): nobody will release, so free its slot and place now.
        .catch(() => {
          free(w.holder);
          reserved = reserved.filter((r) => r.holder !== w.holder);
          changed = true;
        })
        .finally(() => granting--);
    }
  };

  setHandler(requestCloneSlotSignal, (ask) => {
    if (held.has(ask.holder) || waiting.some((w) => w.holder === ask.holder)) return;
    asks++;
    reserved = uncountedReservations(reserved, new Set(ask.running)).filter((r) => r.holder !== ask.holder);
    // The placement plan always offers one place at least. Places are chosen one ask after the other, in the order
    // the asks arrived, so that builds asking in the same task still account for each other.
    const place: { node: string; cloneOn?: string; keys?: string[] } = choosePlacementOffer(ask.offers, ask.need, reserved) ?? { node: ask.offers[0]?.node ?? '' };
    reserved.push({ holder: ask.holder, node: place.node, ...ask.need, expiresAt: Date.now() + RESERVATION_TTL_MS });
    // The slot of the chosen place's clone only. An ask without per-place keys (every ask of a build before this
    // change, and of a build whose places all clone alike) waits for its own keys, as before: the patch is asked only
    // when the keys differ, so a history recorded without it replays to the same grants. The waiting ask keeps the
    // keys chosen here, carried over by continue-as-new.
    const keys = place.keys && patched(PATCHES.cloneSlotsPerPlaceKeys) ? place.keys : ask.keys;
    waiting.push({ ...ask, keys, node: place.node, ...(place.cloneOn ? { cloneOn: place.cloneOn } : {}), since: Date.now() });
    changed = true;
  });
  setHandler(releaseCloneSlotSignal, ({ holder, vmid }) => {
    free(holder);
    const r = reserved.find((x) => x.holder === holder);
    if (r && vmid !== undefined) r.vmid = vmid;
    changed = true;
  });
  setHandler(releasePlacementSignal, ({ holder }) => {
    free(holder);
    reserved = reserved.filter((r) => r.holder !== holder);
    changed = true;
  });
  setHandler(cloneSlotsQuery, (): CloneSlotsView => ({
    held: [...held.values()].map(({ holder, keys }) => ({ holder, keys })),
    waiting: waiting.map(({ holder, keys, since }) => ({ holder, keys, since: new Date(since).toISOString() })),
    reserved: reserved.map(({ holder, node, vmid }) => ({ holder, node, ...(vmid !== undefined ? { vmid } : {}) })),
  }));

  const rollOver = () => asks >= ASKS_PER_RUN || workflowInfo().continueAsNewSuggested;
  /**
   * Frees what its holder never gave back (a terminated build). One timer at a time, for the earliest expiry: a
   * release does not move it (it fires for nothing at worst, and is set again), so asks and releases start no timers.
   */
  const expire = async () => {
    for (;;) {
      const earliest = () => Math.min(...[...held.values()].map((h) => h.expiresAt), ...reserved.map((r) => r.expiresAt));
      if (Number.isFinite(earliest())) await sleep(Math.max(1, earliest() - Date.now()));
      else await condition(() => Number.isFinite(earliest()));
      for (const [holder, h] of held) if (h.expiresAt <= Date.now()) held.delete(holder);
      reserved = reserved.filter((r) => r.expiresAt > Date.now());
      changed = true;
    }
  };
  void expire();
  for (;;) {
    await condition(() => changed || rollOver());
    grant();
    if (rollOver()) {
      // Everything lives in the state carried over; only grants still in flight must land first.
      await condition(() => granting === 0);
      await continueAsNew<typeof cloneSlots>({ held: [...held.values()], waiting, reserved });
    }
  }
}
