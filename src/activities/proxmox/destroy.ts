import { ApplicationFailure } from '@temporalio/activity';
import { PveApiError } from '../../clients/pve';
import { deviceNames } from '../../domain/deviceNames';
import { ErrorType } from '../../errors';
import type { ActivityDeps } from '../deps';
import { releaseStaticAddress } from './addressLease';
import { pveFailure } from './failures';
import { earlierTask, taskFailure, taskOutcome } from './runTask';

export interface DestroyVmInput {
  serial: string;
  name: string;
  vmid: number;
  /** Where the VM was last seen; it is looked up again in case HA or an operator moved it. */
  node: string;
}

/**
 * Destroys the request's VM with its disks. Only a VM carrying this request's marker is touched; a VM that is
 * already gone is success. A running VM is stopped first (destroy refuses running VMs).
 */
export function destroyActivities({ pve, settings, temporal }: ActivityDeps) {
  return {
    /** Destroys the VM, then gives its static address (if any) back to the pool: only a VM that is gone frees it. */
    async destroyVm(input: DestroyVmInput): Promise<'destroyed' | 'absent'> {
      const outcome = await destroy(input);
      if (settings.addressPool) await releaseStaticAddress(temporal.client, input.serial);
      return outcome;
    },
  };

  async function vmidExists(vmid: number): Promise<boolean> {
    return pve.nextId(vmid).then(
      () => false,
      (err) => (err instanceof PveApiError && err.errorClass === 'alreadyExists' ? true : Promise.reject(err)),
    );
  }

  /**
   * Waits (heartbeating) for every clone this token is running anywhere in the cluster; whether there was one. A
   * qmclone task names its source, not the VM it makes, so which clone makes the VM cannot be told before it ends.
   */
  async function waitForOwnClones(): Promise<boolean> {
    let waited = false;
    for (const { node } of await pve.nodes()) {
      const clones = await pve.ownCloneTasks(node, { source: 'active' }).catch(() => []); // an offline node clones nothing
      for (const t of clones) {
        await taskOutcome(pve, t.upid, { ...settings, outlastCancel: true }, 'preparatoryUpid');
        waited = true;
      }
    }
    return waited;
  }

  async function destroy(input: DestroyVmInput): Promise<'destroyed' | 'absent'> {
    const { serial, vmid } = input;
    const marker = deviceNames(serial, input.name).marker;
    if ((await earlierTask(pve, settings))?.ok) return 'destroyed';
    let upid: string;
    let node = input.node;
    {
      try {
        let vm = (await pve.clusterResources('vm')).find((r) => r.vmid === vmid);
        // Not visible to the pool token: really gone, a clone still copying (Proxmox adds it to the pool at its end;
        // its build may have been cancelled before it learnt the clone's UPID), or a clone whose Proxmox worker died
        // before adding it. nextid tells gone from there (it sees every VMID in the cluster); our running clones are
        // waited for, then the VM looked for again.
        if (!vm && (await vmidExists(vmid)) && (await waitForOwnClones())) {
          // Where the clone put it; /cluster/resources lags the pool by a status cycle.
          vm = await pve.vmConfig(node, vmid).then(
            () => ({ id: `qemu/${vmid}`, type: 'qemu', vmid, node }),
            (err) => (err instanceof PveApiError && (err.errorClass === 'permission' || err.errorClass === 'notFound') ? undefined : Promise.reject(err)),
          );
        }
        if (!vm) {
          if (!(await vmidExists(vmid))) return 'absent';
          throw ApplicationFailure.create({
            type: ErrorType.PveTaskFailed,
            nonRetryable: true,
            message:
              `VM ${vmid} exists but the API token cannot see it: most likely the half-made clone of request ${serial}, left ` +
              `outside pool '${settings.pool}' (with a stale 'lock: clone') by a Proxmox worker that died. As root: ` +
              `'qm config ${vmid}' to confirm, then 'qm unlock ${vmid}' and 'qm destroy ${vmid} --purge'.`,
          });
        }
        node = vm.node ?? node;
        const cfg = await pve.vmConfig(node, vmid);
        if (cfg.lock === 'clone' || cfg.lock === 'create') {
          if ((await pve.activeTasks(node, vmid)).length === 0) {
            // No task holds it: a worker died mid-clone and left the lock. Only root@pam can clear it (tokens cannot).
            throw ApplicationFailure.create({
              type: ErrorType.PveTaskFailed,
              nonRetryable: true,
              message:
                `VM ${vmid} on node ${node} carries a stale 'lock: ${cfg.lock}' that no running task holds (a Proxmox worker ` +
                `died mid-${cfg.lock}); request ${serial} cannot remove it with an API token. As root on ${node}: ` +
                `'qm unlock ${vmid}', check it is the half-made VM of ${serial}, then 'qm destroy ${vmid} --purge'.`,
            });
          }
          // A clone still copying has no description yet: wait for it to finish before judging whose VM it is.
          throw ApplicationFailure.create({
            type: ErrorType.PveTransient,
            message: `VM ${vmid} on node ${node} is still locked (${cfg.lock}) for request ${serial}; destroying it once the lock is released`,
          });
        }
        if (!cfg.description?.startsWith(marker)) {
          throw ApplicationFailure.create({
            type: ErrorType.PveVmidTaken,
            nonRetryable: true,
            message: `VM ${vmid} on node ${node} does not carry the marker of request ${serial}: pveflow will not destroy it. An operator should check who owns it.`,
          });
        }
        if ((await pve.vmStatus(node, vmid)).status === 'running') {
          const stop = await taskOutcome(pve, await pve.vmPower(node, vmid, 'stop'), settings, 'preparatoryUpid');
          if (!stop.ok) throw taskFailure(stop, { serial, vmid, node }, 'stopping the VM before destroying it');
        }
        upid = await pve.destroyVm(node, vmid, { purge: true, 'destroy-unreferenced-disks': true });
      } catch (err) {
        if (err instanceof ApplicationFailure) throw err;
        if (err instanceof PveApiError && err.errorClass === 'notFound') return 'absent';
        throw pveFailure(err, { serial, vmid, node }, 'destroying the VM');
      }
    }
    const outcome = await taskOutcome(pve, upid, settings);
    if (!outcome.ok) {
      if (/does not exist/.test(outcome.exitstatus)) return 'absent';
      throw taskFailure(outcome, { serial, vmid, node }, 'destroying the VM');
    }
    return 'destroyed';
  }
}
