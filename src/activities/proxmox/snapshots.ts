import type { ActivityDeps } from '../deps';
import { pveFailure } from './failures';
import type { VmRef } from './power';
import type { PowerState } from './powerControl';
import { awaitTask, earlierTask } from './runTask';
import { bootDisk } from './vmSettings';
import { memoryOf } from '../../domain/reconfigurePlan';
import type { VmSize } from '../../contracts/vmOperations';

/** The size a VM's config states, as a request states it (cores per socket times sockets, as the request counts). */
export function sizeOfConfig(raw: Record<string, unknown>): VmSize {
  const disk = bootDisk(raw);
  return {
    cores: Number(raw.cores ?? 1) * Number(raw.sockets ?? 1),
    memoryMiB: memoryOf(raw.memory) ?? 512,
    ...(disk ? { diskGiB: Math.ceil(disk.sizeGiB) } : {}),
  };
}

export interface SnapshotRef extends VmRef {
  name: string;
}

/**
 * The request's snapshots on Proxmox (reference §4.16). Each looks before it acts: a snapshot an earlier attempt
 * took is not taken again, one already deleted is not deleted again, and a retry waits on the task the earlier
 * attempt started (its UPID heartbeated) rather than starting a second one.
 */
export function snapshotActivities({ pve, settings }: ActivityDeps) {
  const names = async (ref: VmRef, doing: string) => {
    try {
      return new Set((await pve.snapshots(ref.node, ref.vmid)).map((s) => s.name).filter((n) => n !== 'current'));
    } catch (err) {
      throw pveFailure(err, ref, doing);
    }
  };

  return {
    /** With `withRam` on a running VM, its memory too: a revert then resumes the guest where it was. */
    async createSnapshot(input: SnapshotRef & { withRam: boolean; description?: string }): Promise<{ withRam: boolean }> {
      const doing = `taking snapshot ${input.name}`;
      const earlier = await earlierTask(pve, settings);
      let running: boolean;
      try {
        running = (await pve.vmStatus(input.node, input.vmid)).status === 'running';
      } catch (err) {
        throw pveFailure(err, input, doing);
      }
      const withRam = input.withRam && running;
      // The request's own name (the workflow refuses names it already holds): found, it is this operation's.
      if (earlier?.ok || (await names(input, doing)).has(input.name)) return { withRam };
      let upid: string;
      try {
        upid = await pve.createSnapshot(input.node, input.vmid, {
          snapname: input.name,
          ...(withRam ? { vmstate: true } : {}),
          ...(input.description ? { description: input.description } : {}),
        });
      } catch (err) {
        throw pveFailure(err, input, doing, 'VM.Snapshot');
      }
      await awaitTask(pve, upid, input, doing, settings);
      return { withRam };
    },

    /**
     * Puts the VM back as the snapshot has it. Proxmox stops a running VM for it; a RAM snapshot resumes it, and
     * `start` boots one that was running before. Doing it twice ends in the same place.
     */
    /** Rolls back, and reports the VM as the rollback left it: its power, and its size (the snapshot's config came back). */
    async revertSnapshot(input: SnapshotRef & { start: boolean }): Promise<{ power: PowerState; size?: VmSize }> {
      const doing = `reverting to snapshot ${input.name}`;
      if (!(await earlierTask(pve, settings))?.ok) {
        let upid: string;
        try {
          upid = await pve.rollbackSnapshot(input.node, input.vmid, input.name, input.start ? { start: true } : {});
        } catch (err) {
          throw pveFailure(err, input, doing, 'VM.Snapshot');
        }
        await awaitTask(pve, upid, input, doing, settings);
      }
      try {
        const [status, config] = await Promise.all([pve.vmStatus(input.node, input.vmid), pve.vmConfig(input.node, input.vmid)]);
        return { power: status.status, size: sizeOfConfig(config.raw) };
      } catch (err) {
        throw pveFailure(err, input, doing);
      }
    },

    async deleteSnapshot(input: SnapshotRef): Promise<'deleted' | 'absent'> {
      const doing = `deleting snapshot ${input.name}`;
      if ((await earlierTask(pve, settings))?.ok) return 'deleted';
      if (!(await names(input, doing)).has(input.name)) return 'absent';
      let upid: string;
      try {
        upid = await pve.deleteSnapshot(input.node, input.vmid, input.name);
      } catch (err) {
        throw pveFailure(err, input, doing, 'VM.Snapshot');
      }
      await awaitTask(pve, upid, input, doing, settings);
      return 'deleted';
    },
  };
}
