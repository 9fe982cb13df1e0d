import { lockTimeoutText } from './errors';
import type { Faults } from './faults';

/**
 * The node-local config flock `/var/lock/qemu-server/lock-<vmid>.conf` (pve-common `Tools.pm lock_file_full`):
 * held for the whole of an operation, exclusive or shared (a clone of a stopped source takes it shared), waited
 * for up to a timeout, after which the operation dies with PVE's `can't lock file ... - got timeout`.
 */
type Mode = 'shared' | 'exclusive';

interface Waiter {
  mode: Mode;
  grant: () => void;
}

interface LockState {
  exclusive: boolean;
  shared: number;
  waiters: Waiter[];
}

export class ConfigFlocks {
  private readonly locks = new Map<string, LockState>();

  /** `faults`: a `lockTimeout` fault stands for a holder outside the simulator (a hung `qm` process, a backup). */
  constructor(private readonly faults?: Faults) {}

  /** Resolves with the release function, or rejects with the timeout text after `timeoutMs`. */
  acquire(node: string, vmid: number, mode: Mode, timeoutMs: number): Promise<() => void> {
    if (this.faults?.take('lockTimeout', { node, vmid })) {
      return new Promise((_, reject) => setTimeout(() => reject(new Error(lockTimeoutText(vmid))), Math.max(0, timeoutMs)));
    }
    const key = `${node}/${vmid}`;
    const state = this.locks.get(key) ?? { exclusive: false, shared: 0, waiters: [] };
    this.locks.set(key, state);
    const release = this.releaser(key, state, mode);
    if (this.grantable(state, mode) && state.waiters.length === 0) {
      this.take(state, mode);
      return Promise.resolve(release);
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        mode,
        grant: () => {
          clearTimeout(timer);
          this.take(state, mode);
          resolve(release);
        },
      };
      const timer = setTimeout(
        () => {
          state.waiters.splice(state.waiters.indexOf(waiter), 1);
          reject(new Error(lockTimeoutText(vmid)));
        },
        Math.max(0, timeoutMs),
      );
      state.waiters.push(waiter);
    });
  }

  isHeld(node: string, vmid: number): boolean {
    const state = this.locks.get(`${node}/${vmid}`);
    return !!state && (state.exclusive || state.shared > 0);
  }

  private grantable(state: LockState, mode: Mode): boolean {
    return mode === 'shared' ? !state.exclusive : !state.exclusive && state.shared === 0;
  }

  private take(state: LockState, mode: Mode): void {
    if (mode === 'shared') state.shared++;
    else state.exclusive = true;
  }

  private releaser(key: string, state: LockState, mode: Mode): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (mode === 'shared') state.shared--;
      else state.exclusive = false;
      while (state.waiters.length && this.grantable(state, state.waiters[0]!.mode)) state.waiters.shift()!.grant();
      if (!state.exclusive && state.shared === 0 && state.waiters.length === 0) this.locks.delete(key);
    };
  }
}
