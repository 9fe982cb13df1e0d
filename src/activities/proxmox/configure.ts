import { deviceNames } from '../../domain/deviceRequest';
import type { ActivityDeps } from '../deps';
import { pveFailure } from './failures';
import { awaitTask, resumedUpid } from './runTask';

export interface ConfigureVmInput {
  serial: string;
  name: string;
  vmid: number;
  node: string;
  cores: number;
  memoryMiB: number;
  /** `local:snippets/<file>` — the cloud-init user-data uploaded for this VM. */
  snippetVolid: string;
}

/**
 * Sets the request's hardware and cloud-init in one async config update. Setting the same values twice changes
 * nothing, so a retry simply applies them again.
 */
export function configureActivities({ pve, settings }: ActivityDeps) {
  return {
    async configureVm(input: ConfigureVmInput): Promise<void> {
      const { serial, vmid, node } = input;
      const s = { serial, vmid, node };
      const resumed = resumedUpid();
      if (resumed) return awaitTask(pve, resumed, s, 'configuring the VM', settings);
      let upid: string;
      try {
        upid = await pve.updateVmConfig(node, vmid, {
          cores: input.cores,
          memory: String(input.memoryMiB),
          agent: '1',
          cicustom: `user=${input.snippetVolid}`,
          ipconfig0: 'ip=dhcp',
          tags: ['pveflow', deviceNames(serial, input.name).tag].join(';'),
        });
      } catch (err) {
        throw pveFailure(err, s, 'configuring the VM');
      }
      await awaitTask(pve, upid, s, 'configuring the VM', settings);
    },
  };
}
