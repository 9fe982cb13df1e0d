import type { RequestStatus } from './types';

/**
 * The day-2 operations on a request's VM (power, reconfigure, snapshots, migrate): what a caller asks, what the
 * request records about each, and what the answer says. Plain JSON: it crosses payloads and the record.
 */

/** The power actions, listed once: the update's check, the API's schema and the CLI read this. */
export const POWER_ACTIONS = ['start', 'shutdown', 'reboot', 'stop'] as const;
export type PowerAction = (typeof POWER_ACTIONS)[number];
export type SnapshotAction = 'create' | 'revert' | 'delete';

/** Who may ask: the API key's role (Temporal UI and scripts speak for an operator). */
export type CallerRole = 'requester' | 'admin' | 'operator';

/** Every operation carries who asks, as which role, why, and an id: the same id twice does one thing. */
export interface OperationCaller {
  /** Chosen by the caller (the API takes the Idempotency-Key): 1 to 100 characters of `[A-Za-z0-9._:-]`. */
  id: string;
  by: string;
  role: CallerRole;
  note?: string;
}

export interface PowerArgs extends OperationCaller {
  action: PowerAction;
}

export interface ReconfigureArgs extends OperationCaller {
  cores?: number;
  memoryMiB?: number;
  /** The boot disk's new size: only ever grown. */
  diskGiB?: number;
  /** A change Proxmox cannot hot-plug takes a reboot: without this, such a change is refused and nothing changes. */
  confirmReboot?: boolean;
}

export interface SnapshotArgs extends OperationCaller {
  action: SnapshotAction;
  name: string;
  /** create: save the running guest's memory too, so that a revert resumes it where it was. */
  withRam?: boolean;
  description?: string;
}

export interface MigrateArgs extends OperationCaller {
  target: string;
}

export type VmOperation =
  | { kind: 'power'; action: PowerAction }
  | { kind: 'reconfigure'; cores?: number; memoryMiB?: number; diskGiB?: number; confirmReboot?: boolean }
  | { kind: 'snapshot'; action: SnapshotAction; name: string; withRam?: boolean; description?: string }
  | { kind: 'migrate'; target: string };

export type OperationKind = VmOperation['kind'];

/** One day-2 operation as the request records it. */
export interface OperationRecord {
  id: string;
  /** What was asked, in words: `power shutdown`, `snapshot create before-upgrade`, `migrate to pve2`. */
  what: string;
  operation: VmOperation;
  by: string;
  role: CallerRole;
  note?: string;
  startedAt: string;
  endedAt?: string;
  /** refused: the VM said no before anything changed (a reboot not confirmed, a disk that would shrink). */
  state: 'running' | 'succeeded' | 'failed' | 'refused';
  /** What it did (`the guest did not shut down within 120 s: stopped`), or why it failed or was refused. */
  outcome?: string;
}

/** A snapshot pveflow took for the request (the ones taken by hand on the cluster are not the request's). */
export interface SnapshotRecord {
  name: string;
  takenAt: string;
  by: string;
  withRam: boolean;
  description?: string;
  /** The VM's size when it was taken: a revert brings it back, and the API counts it against the quotas first. */
  size?: VmSize;
}

/** A VM's size as its request states it. */
export interface VmSize {
  cores: number;
  memoryMiB: number;
  diskGiB?: number;
}

/** The answer of every day-2 update: the operation as it ended, and the request's VM as it left it. */
export interface OperationResult {
  serial: string;
  status: RequestStatus;
  operation: OperationRecord;
  node?: string;
  power?: 'running' | 'stopped';
  snapshots: SnapshotRecord[];
}
