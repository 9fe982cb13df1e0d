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
 */
export class LocalCloneGate {
  private readonly inUse = new Map<string, number>();
  private readonly waiting: Array<{ keys: string[]; limits: Record<string, number>; admit: () => void }> = [];

  /** Resolves once this process has room for a clone with `keys`; call the returned function when it is over. */
  async enter(keys: string[], limits: Record<string, number>, signal: AbortSignal): Promise<() => void> {
    signal.throwIfAborted();
    await new Promise<void>((resolve, reject) => {
      const entry = { keys, limits, admit: resolve };
      this.waiting.push(entry);
      this.admit();
      if (!this.waiting.includes(entry)) return;
      signal.addEventListener(
        'abort',
        () => {
          const i = this.waiting.indexOf(entry);
          if (i < 0) return; // admitted meanwhile: the caller leaves as usual
          this.waiting.splice(i, 1);
          reject(signal.reason);
        },
        { once: true },
      );
    });
    let left = false;
    return () => {
      if (left) return;
      left = true;
      for (const key of keys) this.inUse.set(key, (this.inUse.get(key) ?? 1) - 1);
      this.admit();
    };
  }

  /** First come, first served, but a clone whose node and storages have room never waits behind one whose do not. */
  private admit(): void {
    for (let i = 0; i < this.waiting.length; ) {
      const w = this.waiting[i]!;
      if (w.keys.every((key) => (this.inUse.get(key) ?? 0) < (w.limits[key] ?? Number.POSITIVE_INFINITY))) {
        for (const key of w.keys) this.inUse.set(key, (this.inUse.get(key) ?? 0) + 1);
        this.waiting.splice(i, 1);
        w.admit();
      } else i++;
    }
  }
}
