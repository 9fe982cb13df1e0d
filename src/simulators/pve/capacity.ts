import type { Faults } from './faults';
import type { StorageSeed } from './seed';
import { sleep } from './timing';

/**
 * Storage capacity and the storage lock (pve-storage `vdisk_alloc` under `lock_storage`, reference §4.18 and §5):
 * local storages count per node, shared ones once for the cluster. Allocation first takes the storage lock
 * (local: node flock `/var/lock/pve-manager/pve-storage-<sid>`, shared: the cfs lock `storage-<sid>`), then asks
 * the plugin for space. Thick plugins refuse what does not fit; LVM-thin over-commits and refuses only once the
 * pool itself is full, which is what makes it the dangerous one.
 */
export class StorageLockTimeout extends Error {}
export class StorageFull extends Error {}

export class StorageCapacity {
  /** Bytes allocated by the simulator on top of the seed's `used`, keyed `sid` (shared) or `sid@node` (local). */
  private readonly allocated = new Map<string, number>();
  /** The storage locks, same keys: who holds each (a count of 0 or 1) and who queues for it, first come first served. */
  private readonly locks = new Map<string, { held: boolean; queue: Array<() => void> }>();

  constructor(private readonly faults: Faults) {}

  private key(s: StorageSeed, node: string): string {
    return s.shared ? s.id : `${s.id}@${node}`;
  }

  used(s: StorageSeed, node: string): number {
    return s.used + (this.allocated.get(this.key(s, node)) ?? 0);
  }

  /** What `/nodes/{n}/storage` reports as `avail` (0 while a `noSpace` fault holds the storage). */
  avail(s: StorageSeed, node: string): number {
    if (this.faults.peek('noSpace', { storage: s.id, node })) return 0;
    return Math.max(0, s.total - this.used(s, node));
  }

  /**
   * Allocates `bytes` on `s` as seen from `node` under the storage lock, which each allocation holds for `holdMs`;
   * a waiter gives up after `lockWaitMs` (and at once when a fault holds the lock). Throws `StorageLockTimeout` or
   * `StorageFull` with the plugin's text.
   */
  async allocate(s: StorageSeed, node: string, bytes: number, lockWaitMs: number, volname: string, holdMs = 0): Promise<void> {
    if (this.faults.take('storageLockTimeout', { storage: s.id, node })) {
      await sleep(lockWaitMs);
      throw new StorageLockTimeout(lockTimeoutText(s));
    }
    const release = holdMs > 0 ? await this.lock(this.key(s, node), lockWaitMs, s) : () => undefined;
    try {
      await sleep(holdMs);
      this.allocateNow(s, node, bytes, volname);
    } finally {
      release();
    }
  }

  /** Takes the storage lock, or throws PVE's timeout text once `waitMs` has passed in the queue. */
  private lock(key: string, waitMs: number, s: StorageSeed): Promise<() => void> {
    const state = this.locks.get(key) ?? { held: false, queue: [] };
    this.locks.set(key, state);
    const release = () => {
      const next = state.queue.shift();
      if (next) next();
      else state.held = false;
    };
    if (!state.held) {
      state.held = true;
      return Promise.resolve(release);
    }
    return new Promise((resolve, reject) => {
      const grant = () => {
        clearTimeout(timer);
        resolve(release);
      };
      const timer = setTimeout(
        () => {
          state.queue.splice(state.queue.indexOf(grant), 1);
          reject(new StorageLockTimeout(lockTimeoutText(s)));
        },
        Math.max(0, waitMs),
      );
      state.queue.push(grant);
    });
  }

  private allocateNow(s: StorageSeed, node: string, bytes: number, volname: string): void {
    const full = this.faults.peek('noSpace', { storage: s.id, node }) !== undefined;
    const free = full ? 0 : s.total - this.used(s, node);
    const refuses = s.type === 'lvmthin' ? free <= 0 : free < bytes;
    if (refuses) throw new StorageFull(fullText(s, node, volname, Math.max(0, free), bytes));
    this.allocated.set(this.key(s, node), (this.allocated.get(this.key(s, node)) ?? 0) + bytes);
  }

  /** Bytes allocated on top of the seed, per `sid` or `sid@node`: what a snapshot keeps. */
  allocations(): Record<string, number> {
    return Object.fromEntries(this.allocated);
  }

  restoreAllocations(allocations: Record<string, number>): void {
    this.allocated.clear();
    for (const [key, bytes] of Object.entries(allocations)) this.allocated.set(key, bytes);
  }

  /**
   * A file written onto a file-based storage (a download): no storage lock, just the filesystem's space. False,
   * and nothing taken, when the bytes do not fit (or a `noSpace` fault holds the storage).
   */
  takeFileSpace(s: StorageSeed, node: string, bytes: number): boolean {
    if (this.avail(s, node) < bytes) return false;
    this.allocated.set(this.key(s, node), (this.allocated.get(this.key(s, node)) ?? 0) + bytes);
    return true;
  }

  release(s: StorageSeed, node: string, bytes: number): void {
    const k = this.key(s, node);
    this.allocated.set(k, (this.allocated.get(k) ?? 0) - bytes);
  }
}

function lockTimeoutText(s: StorageSeed): string {
  return s.shared ? `cfs-lock 'storage-${s.id}' error: got lock request timeout` : `can't lock file '/var/lock/pve-manager/pve-storage-${s.id}' - got timeout`;
}

/** How each plugin reports a full storage (reference §4.18 and §6.10). */
function fullText(s: StorageSeed, _node: string, volname: string, free: number, size: number): string {
  switch (s.type) {
    case 'lvm':
      return `not enough free space (${free} < ${size})`;
    case 'lvmthin':
      return `lvcreate 'pve/${volname}' error:   Cannot create new thin volume, free space in thin pool pve/data reached threshold.`;
    case 'zfspool':
      return `zfs error: cannot create 'rpool/data/${volname}': out of space`;
    case 'rbd':
      return `rbd create '${volname}' error: rbd: create error: (28) No space left on device`;
    default:
      return `unable to create image: qemu-img: /mnt/pve/${s.id}/images/${volname}: Could not create image: No space left on device`;
  }
}
