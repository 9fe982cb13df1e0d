/**
 * This worker process's own queue in front of the cloneSlots workflow. A clone asks the workflow for a slot only once
 * this process holds fewer clones of its node and storages than the limits allow: the workflow then decides between
 * workers, and never has more asks pending than workers × limit.
 *
 * Why: without it, a class or a bench of 200 builds puts 200 Updates on the one slots workflow at once. Each waits in
 * its handler, every release re-evaluates all of them, and the workflow's tasks grew past 5 s under that load, long
 * enough for Temporal to drop the speculative tasks the Updates ride on ("Workflow task not found"), evict the
 * workflow and replay its whole history: every slot turn then took seconds. Waiting in memory costs nothing, and a
 * worker that dies loses only its own queue (its activities are retried and queue again).
 *
 * A clone that leaves may hand its slot to a clone admitted in its place (`leaveHandingOver`): that clone's `handed`
 * then says whether the workflow granted it the slot in the same step, so that it need not ask.
 */
export class LocalCloneGate<R> {
  private readonly inUse = new Map<string, number>();
  private readonly waiting: Array<Waiter<R>> = [];
  /** The waiters admitted by the leave under way; collected by `leaveHandingOver`. */
  private admittedNow: Array<Waiter<R>> = [];

  /** Resolves once this process has room for a clone with `keys`; leave when it is over. */
  async enter(keys: string[], limits: Record<string, number>, signal: AbortSignal, request: R): Promise<GateEntry<R>> {
    signal.throwIfAborted();
    let tellHanded!: (granted: boolean) => void;
    const handed = new Promise<boolean>((resolve) => (tellHanded = resolve));
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter<R> = { keys, limits, request, admit: resolve, tellHanded };
      this.waiting.push(waiter);
      this.admit();
      // Admitted here, not by a clone leaving: nobody hands them anything.
      for (const w of this.admittedNow.splice(0)) w.tellHanded(false);
      if (!this.waiting.includes(waiter)) return;
      signal.addEventListener(
        'abort',
        () => {
          const i = this.waiting.indexOf(waiter);
          if (i < 0) return; // admitted meanwhile: the caller leaves as usual
          this.waiting.splice(i, 1);
          reject(signal.reason);
        },
        { once: true },
      );
    });
    let left = false;
    const leave = (): Array<Handover<R>> => {
      if (left) return [];
      left = true;
      for (const key of keys) this.inUse.set(key, (this.inUse.get(key) ?? 1) - 1);
      this.admittedNow = [];
      this.admit();
      const admitted = this.admittedNow;
      this.admittedNow = [];
      return admitted.map((w) => ({ request: w.request, hand: w.tellHanded }));
    };
    return {
      handed,
      leave: () => {
        for (const next of leave()) next.hand(false);
      },
      leaveHandingOver: leave,
    };
  }

  /** First come, first served, but a clone whose node and storages have room never waits behind one whose do not. */
  private admit(): void {
    for (let i = 0; i < this.waiting.length; ) {
      const w = this.waiting[i]!;
      if (w.keys.every((key) => (this.inUse.get(key) ?? 0) < (w.limits[key] ?? Number.POSITIVE_INFINITY))) {
        for (const key of w.keys) this.inUse.set(key, (this.inUse.get(key) ?? 0) + 1);
        this.waiting.splice(i, 1);
        this.admittedNow.push(w);
        w.admit();
      } else i++;
    }
  }
}

export interface GateEntry<R> {
  /** Whether the clone that left before this one handed it its slot (granted by the workflow): then it need not ask. */
  handed: Promise<boolean>;
  /** Leaves; the clones admitted in its place ask for their slots themselves. Idempotent. */
  leave(): void;
  /** Leaves and returns the clones admitted in its place: the caller tells each whether it handed it its slot. */
  leaveHandingOver(): Array<Handover<R>>;
}

export interface Handover<R> {
  request: R;
  hand(granted: boolean): void;
}

interface Waiter<R> {
  keys: string[];
  limits: Record<string, number>;
  request: R;
  admit: () => void;
  tellHanded: (granted: boolean) => void;
}
