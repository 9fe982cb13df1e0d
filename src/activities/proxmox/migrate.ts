import type { ActivityDeps } from '../deps';
import { pveFailure } from './failures';
import { awaitTask, earlierTask } from './runTask';

export interface MigrateVmInput {
  serial: string;
  vmid: number;
  /** Where the clone was made (the template's node). */
  from: string;
  to: string;
}

/**
 * Moves a freshly cloned, stopped VM from the template's node to the node chosen for it, local disks and all (a
 * template on local storage can only be cloned on its own node). Idempotent: a retry waits on the earlier attempt's
 * task, and a VM already on `to` is left where it is.
 */
export function migrateActivities({ pve, settings }: ActivityDeps) {
  return {
    async migrateVm({ serial, vmid, from, to }: MigrateVmInput): Promise<void> {
      const s = { serial, vmid, node: from };
      if ((await earlierTask(pve, settings))?.ok) return;
      let upid: string;
      try {
        const at = (await pve.clusterResources('vm')).find((r) => r.vmid === vmid)?.node ?? from;
        if (at === to) return;
        upid = await pve.migrateVm(at, vmid, to);
      } catch (err) {
        throw pveFailure(err, s, `migrating the VM to ${to}`);
      }
      await awaitTask(pve, upid, s, `migrating the VM from ${from} to ${to}`, settings);
    },
  };
}
