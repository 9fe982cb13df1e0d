import { HandlerUnfinishedPolicy } from '@temporalio/common';
import { condition, continueAsNew, setHandler, workflowInfo } from '@temporalio/workflow';
import { acquireCloneSlotUpdate, cloneSlotsQuery, handOverCloneSlotUpdate, releaseCloneSlotSignal, type CloneSlotRequest, type CloneSlotsView } from '../contracts/cloneSlotsMessages';

export interface HeldSlot {
  holder: string;
  keys: string[];
  /** Workflow time (ms) after which a holder that never released is presumed dead and its slot freed. */
  expiresAt: number;
}

export interface CloneSlotsInput {
  /** Carried over by continue-as-new. */
  held?: HeldSlot[];
}

/** Keeps a run's history short: a new run after this many acquisitions (or when Temporal suggests it). */
const ACQUISITIONS_PER_RUN = 1000;

/**
 * The clone slots of the cluster: how many clones may run at once per node and per storage, for every build of
 * every worker. Proxmox serializes disk allocation on a storage lock (a node flock for local storage, a cluster lock
 * for shared storage) and gives up after 10 s (proxmox-behaviour.md §5, §6.1): a class of 30 identical VMs cloned at
 * once fails on it. A clone activity acquires a slot for its node and the storages it allocates on before it asks
 * Proxmox, and releases it when the clone task has ended; waiting clones are served first come, first served
 * wherever their node and storages have room.
 *
 * One long-lived workflow per deployment (`pveflow-clone-slots-<task queue>`), continued as new to keep its history short.
 * A holder that crashed is found again by its id when its activity retries; one that never comes back (its build was
 * cancelled) is freed when its slot expires.
 */
export async function cloneSlots(input: CloneSlotsInput = {}): Promise<void> {
  const held = new Map<string, HeldSlot>((input.held ?? []).map((h) => [h.holder, h]));
  const waiting: Array<CloneSlotRequest & { since: number }> = [];
  const withdrawn = new Set<string>();
  let acquisitions = 0;
  /** Bumped whenever a slot is taken, so the loop below re-arms its expiry timer. */
  let taken = 0;

  const inUse = (key: string) => [...held.values()].filter((h) => h.keys.includes(key)).length;
  const fits = (r: CloneSlotRequest) => r.keys.every((key) => inUse(key) < (r.limits[key] ?? Number.POSITIVE_INFINITY));
  /** First come, first served, but a clone whose node and storages have room never waits behind one whose do not. */
  const grant = () => {
    for (let i = 0; i < waiting.length; ) {
      const r = waiting[i]!;
      if (held.has(r.holder)) {
        waiting.splice(i, 1); // asked twice (its first ask was cut off) and granted already
      } else if (fits(r)) {
        held.set(r.holder, { holder: r.holder, keys: r.keys, expiresAt: Date.now() + r.ttlMs });
        waiting.splice(i, 1);
        taken++;
      } else i++;
    }
  };
  /** One place in the queue per holder: an ask cut off (worker restart, continue-as-new) is asked again. */
  const enqueue = (request: CloneSlotRequest) => {
    withdrawn.delete(request.holder);
    if (!held.has(request.holder) && !waiting.some((w) => w.holder === request.holder)) waiting.push({ ...request, since: Date.now() });
  };
  const expire = () => {
    for (const [holder, h] of held) if (h.expiresAt <= Date.now()) held.delete(holder);
  };

  setHandler(
    acquireCloneSlotUpdate,
    async (request) => {
      acquisitions++;
      const again = held.get(request.holder);
      if (again) {
        // The same clone after a worker crash: it still holds its slot.
        again.expiresAt = Date.now() + request.ttlMs;
        return { granted: true, waitedMs: 0 };
      }
      const since = Date.now();
      enqueue(request);
      grant();
      await condition(() => held.has(request.holder) || withdrawn.has(request.holder));
      withdrawn.delete(request.holder);
      return { granted: held.has(request.holder), waitedMs: Date.now() - since };
    },
    // A caller cut off by continue-as-new asks the next run again.
    { unfinishedPolicy: HandlerUnfinishedPolicy.ABANDON },
  );
  // A finished clone's slot and the next clone's ask in one step; first come, first served still decides.
  setHandler(handOverCloneSlotUpdate, ({ from, next }) => {
    acquisitions++;
    held.delete(from);
    enqueue(next);
    grant();
    return { granted: held.has(next.holder) };
  });
  setHandler(releaseCloneSlotSignal, ({ holder }) => {
    held.delete(holder);
    const i = waiting.findIndex((w) => w.holder === holder);
    if (i >= 0) {
      waiting.splice(i, 1);
      withdrawn.add(holder);
    }
    grant();
  });
  setHandler(cloneSlotsQuery, (): CloneSlotsView => ({
    held: [...held.values()].map(({ holder, keys }) => ({ holder, keys })),
    waiting: waiting.map(({ holder, keys, since }) => ({ holder, keys, since: new Date(since).toISOString() })),
  }));

  for (;;) {
    const next = Math.min(...[...held.values()].map((h) => h.expiresAt));
    const due = Number.isFinite(next) ? Math.max(1, next - Date.now()) : undefined;
    const rollOver = () => acquisitions >= ACQUISITIONS_PER_RUN || workflowInfo().continueAsNewSuggested;
    const seen = taken;
    const wake = () => rollOver() || taken !== seen;
    if (due === undefined) await condition(wake);
    else await condition(wake, due);
    expire();
    grant();
    if (rollOver()) {
      // Hand over between clones where possible; a waiter cut off anyway asks the next run again.
      await condition(() => waiting.length === 0, '1 minute');
      await continueAsNew<typeof cloneSlots>({ held: [...held.values()] });
    }
  }
}
