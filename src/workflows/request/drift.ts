import { patched } from '@temporalio/workflow';
import type { VmDrift } from '../../contracts/types';
import { PATCHES } from '../patches';
import { note, publish } from './timeline';
import type { VmRequest } from './request';
import { runningOperation } from './operations';
import { followed, recordSize, resizedTo } from './size';

/**
 * What clusterSync found different about the request's VM: a move (the snippet must follow, in the lease, since an
 * activity cannot run in a signal handler), a state change, a size pveflow did not set, or the VM gone (a fulfilled
 * request then fails).
 */
export function applyDrift(state: VmRequest, drift: VmDrift): void {
  const { record } = state;
  if (drift.vmid !== record.device.vmid) return; // about a VM this request no longer has
  record.drift = { ...drift, at: new Date().toISOString() };
  switch (drift.kind) {
    case 'moved':
      // A day-2 migration there moves the snippet itself: a second mover would race it.
      if (runningOperation(record)?.operation.kind !== 'migrate') state.snippetMoves.push({ vmid: drift.vmid, from: drift.from, to: drift.to });
      record.device.node = drift.to;
      note(state, `VM ${drift.vmid} moved from ${drift.from} to ${drift.to} (migration or HA)`);
      publish(state);
      break;
    case 'state':
      record.device.state = drift.status;
      note(state, `VM ${drift.vmid} is ${drift.status} in the cluster`);
      publish(state);
      break;
    case 'vanished':
      // A fulfilled request says so once, in the transition to Failed that follows.
      if (record.status === 'Fulfilled') state.vmVanished(drift.vmid);
      else note(state, `VM ${drift.vmid} vanished from the cluster`);
      break;
    case 'resized': {
      // Someone changed the VM in Proxmox directly (the GUI, `qm set`): the record and the quota memo follow what Proxmox
      // reports, as after a revert, so that what the org holds is what it has. A day-2 operation under way is changing
      // the size itself and records it when it ends.
      if (record.status !== 'Fulfilled' || runningOperation(record) || !patched(PATCHES.syncFollowsConfig)) break;
      const change = resizedTo(record, drift.size);
      if (!change) break;
      recordSize(state, followed(record, drift.size));
      note(state, `VM ${drift.vmid} was resized in Proxmox outside pveflow; ${change}`);
      break;
    }
  }
}
