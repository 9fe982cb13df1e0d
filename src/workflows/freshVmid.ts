import type { ActivityFailure, ApplicationFailure } from '@temporalio/workflow';
import { ErrorType } from '../errors';

/** How many raced VMIDs a step tolerates before it calls the cluster too busy. */
export const MAX_VMID_COLLISIONS = 5;

/** What a step under a fresh VMID does, told by its workflow. */
export interface FreshVmidSteps<T> {
  /** Reserves another VMID, none of `exclude` (the ones that proved taken). */
  reserve(exclude: number[]): Promise<number>;
  /** Makes the VM under `vmid`, its undo registered before it acts (a cancel mid-way must not leave what Proxmox goes on making). */
  make(vmid: number): Promise<T>;
  /** `vmid` proved someone else's: its undo goes (never touch that VM). */
  disown(vmid: number): void;
  /** Said in the log before the next VMID is reserved. */
  retrying(vmid: number): void;
}

/**
 * Makes a VM under `first` (a VMID reserved beforehand), and under another each time Proxmox says the VMID is taken
 * (it reserves none between `/cluster/nextid` and the create, proxmox-behaviour §4.5), at most MAX_VMID_COLLISIONS
 * times: a build's clone, an image import's VM. Only a VMID the step proved someone else's loses its undo; any other
 * failure keeps it, since the VM may be ours.
 */
export async function underFreshVmid<T>(first: number, steps: FreshVmidSteps<T>): Promise<{ vmid: number; made: T }> {
  const taken: number[] = [];
  for (let vmid = first; ; vmid = await steps.reserve(taken)) {
    try {
      return { vmid, made: await steps.make(vmid) };
    } catch (err) {
      if (activityFailureType(err) !== ErrorType.PveVmidTaken) throw err;
      steps.disown(vmid);
      if (taken.length >= MAX_VMID_COLLISIONS) throw err;
      taken.push(vmid);
      steps.retrying(vmid);
    }
  }
}

/** The type of the application failure an activity failed with. */
export function activityFailureType(err: unknown): string | undefined {
  const cause = (err as ActivityFailure)?.cause as ApplicationFailure | undefined;
  return cause?.type ?? undefined;
}
