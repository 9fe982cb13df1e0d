import { ApplicationFailure } from '@temporalio/activity';
import { deviceNames } from '../../domain/deviceNames';
import type { ConfigureKey } from '../../domain/pveflowPrivileges';
import type { NetworkChoice } from '../../domain/networks';
import { ErrorType } from '../../errors';
import type { ActivityDeps } from '../deps';
import { pveFailure } from './failures';
import { leaseStaticAddress } from './addressLease';
import { awaitTask, earlierTask } from './runTask';
import { bootDisk, net0For, smbios1For } from './vmSettings';

export interface ConfigureVmInput {
  serial: string;
  name: string;
  org: string;
  vmid: number;
  node: string;
  templateVmid: number;
  cores: number;
  memoryMiB: number;
  /** `local:snippets/<file>` — the cloud-init user-data uploaded for this VM. */
  snippetVolid: string;
  /** The bridge and VLAN the request chose (checked at intake against PVE_NETWORKS); absent: PVE_BRIDGE / PVE_VLAN. */
  network?: NetworkChoice;
  /** The boot disk's size asked for: grown after the configuration, in the same activity (one step of the build). */
  diskGiB?: number;
}

/**
 * Sets the request's hardware, network, SMBIOS metadata, tags and cloud-init in one async config update, built on
 * the clone's own config (its SMBIOS UUID and MAC stay). Setting the same values twice changes nothing, so a retry
 * simply applies them again. With PVE_IP_POOL the VM gets a static address leased to its request (the same one on
 * every retry and rebuild until its VM is destroyed); without, DHCP.
 */
export function configureActivities({ pve, settings, temporal }: ActivityDeps) {
  /** Grows the boot disk to `diskGiB`; a disk already that large is left alone (Proxmox never shrinks), so a retry is harmless. */
  const grow = async ({ serial, vmid, node }: { serial: string; vmid: number; node: string }, diskGiB: number): Promise<void> => {
    const s = { serial, vmid, node };
    let upid: string | null;
    try {
      const disk = bootDisk((await pve.vmConfig(node, vmid)).raw);
      if (!disk) {
        throw ApplicationFailure.create({
          type: ErrorType.PveTemplateMissing,
          nonRetryable: true,
          message: `VM ${vmid} of request ${serial} has no boot disk with a size pveflow can grow; check the template's disks.`,
        });
      }
      if (disk.sizeGiB >= diskGiB) return;
      upid = await pve.resizeDisk(node, vmid, disk.key, `${diskGiB}G`);
    } catch (err) {
      if (err instanceof ApplicationFailure) throw err;
      throw pveFailure(err, s, 'growing the disk');
    }
    if (upid) await awaitTask(pve, upid, s, 'growing the disk', settings);
  };
  return {
    /**
     * With `diskGiB`, the boot disk is grown after the configuration. A retry that resumes on a heartbeated task (the
     * configuration's or the growth's: both come after the configuration was applied) skips the configuration; the
     * growth then finds the disk as large as asked, or grows it.
     */
    async configureVm(input: ConfigureVmInput): Promise<{ staticAddress?: string }> {
      const { serial, vmid, node } = input;
      const s = { serial, vmid, node };
      const names = deviceNames(serial, input.name);
      const address = settings.addressPool ? await leaseStaticAddress(temporal.client, settings.addressPool, serial) : undefined;
      const configured = address ? { staticAddress: address.address } : {};
      if (!(await earlierTask(pve, settings))?.ok) {
        let upid: string;
        try {
          const current = await pve.vmConfig(node, vmid);
          // Exactly CONFIGURE_KEYS: the privileges the token needs for this call are derived from that list.
          const keys: Record<ConfigureKey, string> = {
            // One socket of `cores`, whatever the template has: Proxmox counts sockets × cores, and so do the cluster
            // listing, the sync and a revert (the topology day-2 reconfigure gives a VM too).
            cores: String(input.cores),
            sockets: '1',
            memory: String(input.memoryMiB),
            agent: '1',
            net0: input.network ? net0For(current.raw.net0 as string | undefined, input.network.bridge, input.network.vlan) : net0For(current.raw.net0 as string | undefined, settings.bridge, settings.vlan),
            ipconfig0: address?.ipconfig0 ?? 'ip=dhcp',
            cicustom: `user=${input.snippetVolid}`,
            smbios1: smbios1For(current.raw.smbios1 as string | undefined, { vmName: names.hostname, templateVmid: input.templateVmid, serial, org: input.org }),
            tags: ['pveflow', names.tag].join(';'),
          };
          upid = await pve.updateVmConfig(node, vmid, { ...keys, digest: current.digest });
        } catch (err) {
          throw pveFailure(err, s, 'configuring the VM');
        }
        await awaitTask(pve, upid, s, 'configuring the VM', settings);
      }
      if (input.diskGiB) await grow(s, input.diskGiB);
      return configured;
    },

    /** Grows the boot disk to the requested size (builds started before configureVm took `diskGiB`). */
    async growDisk({ serial, vmid, node, diskGiB }: { serial: string; vmid: number; node: string; diskGiB: number }): Promise<void> {
      if ((await earlierTask(pve, settings))?.ok) return;
      await grow({ serial, vmid, node }, diskGiB);
    },
  };
}
