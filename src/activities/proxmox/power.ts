import { PveApiError } from '../../clients/pve';
import type { ActivityDeps } from '../deps';
import { pveFailure } from './failures';
import { earlierTask, taskFailure, taskOutcome } from './runTask';

export interface VmRef {
  serial: string;
  vmid: number;
  node: string;
}

/** Start and graceful shutdown, each a no-op when the VM is already where it should be. */
export function powerActivities({ pve, settings }: ActivityDeps) {
  return {
    async startVm(ref: VmRef): Promise<void> {
      const { vmid, node } = ref;
      if ((await earlierTask(pve, settings))?.ok) return;
      let upid: string;
      try {
        if ((await pve.vmStatus(node, vmid)).status === 'running') return;
        upid = await pve.vmPower(node, vmid, 'start');
      } catch (err) {
        throw pveFailure(err, ref, 'starting the VM');
      }
      const outcome = await taskOutcome(pve, upid, settings);
      // A start that raced an earlier attempt's start finds the VM running: that is the state we wanted.
      if (!outcome.ok && !/already running/.test(outcome.exitstatus)) throw taskFailure(outcome, ref, 'starting the VM');
    },

    /**
     * Shuts the guest down (through the guest agent when it answers, else ACPI) and, after `timeoutSeconds`, stops
     * it hard: a lease that ends must end even if the guest ignores the request.
     */
    async shutdownVm(ref: VmRef & { timeoutSeconds: number }): Promise<void> {
      const { vmid, node } = ref;
      if ((await earlierTask(pve, settings))?.ok) return;
      let upid: string;
      try {
        if ((await pve.vmStatus(node, vmid)).status === 'stopped') return;
        upid = await pve.vmPower(node, vmid, 'shutdown', { timeout: ref.timeoutSeconds, forceStop: true });
      } catch (err) {
        if (err instanceof PveApiError && err.errorClass === 'notFound') return;
        throw pveFailure(err, ref, 'shutting the VM down');
      }
      const outcome = await taskOutcome(pve, upid, settings);
      if (!outcome.ok) throw taskFailure(outcome, ref, 'shutting the VM down');
    },
  };
}
