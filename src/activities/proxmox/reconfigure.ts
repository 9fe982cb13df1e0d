import { memoryOf, planReconfigure, rebootReason, type ReconfigurePlan, type VmHardware, type WantedHardware } from '../../domain/reconfigurePlan';
import type { ActivityDeps } from '../deps';
import { pveFailure } from './failures';
import type { VmRef } from './power';
import { awaitTask, earlierTask } from './runTask';
import { bootDisk } from './vmSettings';

export interface ReconfigurePlanned extends ReconfigurePlan {
  /** A running VM whose change waits for a reboot: why (for the caller who must confirm it). */
  rebootNeeded?: string;
}

/**
 * Reconfigure in two steps, so that a caller hears before anything changes whether it takes a reboot: the plan
 * (read-only) and the config change. The disk grows separately (`growDisk`, online). Setting the same values again
 * changes nothing, so a retry of the change simply applies them again.
 */
export function reconfigureActivities({ pve, settings }: ActivityDeps) {
  return {
    async planReconfigure(input: VmRef & WantedHardware): Promise<ReconfigurePlanned> {
      const { serial, vmid, node } = input;
      let hardware: VmHardware;
      try {
        // `current=1` would hide changes already pending; the default view (pending applied) is what the VM is about to be.
        const [config, status] = await Promise.all([pve.vmConfig(node, vmid), pve.vmStatus(node, vmid)]);
        const raw = config.raw;
        hardware = {
          running: status.status === 'running',
          cores: Number(raw.cores ?? 1),
          sockets: Number(raw.sockets ?? 1),
          ...(raw.vcpus !== undefined ? { vcpus: Number(raw.vcpus) } : {}),
          memoryMiB: memoryOf(raw.memory) ?? 512,
          numa: raw.numa === 1 || raw.numa === '1',
          ...(typeof raw.hotplug === 'string' ? { hotplug: raw.hotplug } : raw.hotplug !== undefined ? { hotplug: String(raw.hotplug) } : {}),
          ...(bootDisk(raw) ? { bootDisk: bootDisk(raw)! } : {}),
        };
      } catch (err) {
        throw pveFailure(err, { serial, vmid, node }, 'reading the VM config');
      }
      const plan = planReconfigure(hardware, input);
      const needsReboot = hardware.running && plan.afterReboot.length > 0;
      return needsReboot ? { ...plan, rebootNeeded: rebootReason(hardware, plan) } : plan;
    },

    /** Sets (and deletes) the planned keys in one config update; Proxmox hot-plugs what it can, the rest waits. */
    async applyVmConfig(input: VmRef & { set: Record<string, string>; remove: string[] }): Promise<{ pending: string[] }> {
      const { serial, vmid, node } = input;
      const s = { serial, vmid, node };
      if (!(await earlierTask(pve, settings))?.ok) {
        let upid: string;
        try {
          const current = await pve.vmConfig(node, vmid);
          upid = await pve.updateVmConfig(node, vmid, { ...input.set, ...(input.remove.length ? { delete: input.remove.join(',') } : {}), digest: current.digest });
        } catch (err) {
          throw pveFailure(err, s, 'changing the VM config');
        }
        await awaitTask(pve, upid, s, 'changing the VM config', settings);
      }
      return { pending: await pendingKeys(input) };
    },

    /** The keys of the VM's config still waiting for a restart. */
    async pendingConfig(ref: VmRef): Promise<string[]> {
      return pendingKeys(ref);
    },
  };

  async function pendingKeys({ serial, vmid, node }: VmRef): Promise<string[]> {
    try {
      const entries = await pve.vmPendingConfig(node, vmid);
      return entries.filter((e) => e.pending !== undefined || e.delete).map((e) => e.key);
    } catch (err) {
      throw pveFailure(err, { serial, vmid, node }, 'reading the VM config');
    }
  }
}
