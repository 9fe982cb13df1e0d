import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { ErrorType } from '../../errors';
import type { ActivityDeps } from '../deps';
import { describe, pveFailure } from './failures';
import { awaitTask, earlierTask } from './runTask';

export interface MoveVmInput {
  serial: string;
  vmid: number;
  /** Where the request's record says the VM is. */
  from: string;
  to: string;
}

/** How long an HA-managed VM may take to arrive after its `hamigrate` task ended. */
const HA_ARRIVAL_S = 600;

/**
 * A day-2 migration: a running VM moves online (its local disks copied along), a stopped one offline. Idempotent:
 * the VM is looked for where it is now (a retry after the move finds it on `to` and does nothing), and a retry waits
 * on the earlier attempt's task. Ends only once the cluster shows the VM on `to` (HA moves it after its task ends).
 */
export function liveMigrateActivities({ pve, settings }: ActivityDeps) {
  const whereIs = async (vmid: number) => (await pve.clusterResources('vm')).find((r) => r.vmid === vmid)?.node;
  const runsOn = async (node: string, vmid: number) => (await pve.vmStatus(node, vmid)).status === 'running';

  return {
    async moveVm({ serial, vmid, from, to }: MoveVmInput): Promise<{ online: boolean }> {
      const s = { serial, vmid, node: from };
      const doing = `migrating the VM from ${from} to ${to}`;
      const earlier = await earlierTask(pve, settings);
      if (!earlier?.ok) {
        let upid: string;
        try {
          const nodes = await pve.nodes();
          const target = nodes.find((n) => n.node === to);
          if (!target || target.status !== 'online') {
            throw ApplicationFailure.create({
              type: ErrorType.InvalidRequest,
              nonRetryable: true,
              message:
                `cannot migrate the VM of request ${serial} (VM ${vmid}) to ${to}: ` +
                (target
                  ? `the node is ${target.status}`
                  : `no such node in the cluster (nodes: ${nodes
                      .map((n) => n.node)
                      .sort()
                      .join(', ')})`),
            });
          }
          const at = (await whereIs(vmid)) ?? from;
          // Already there: an earlier attempt moved it (the request refuses a migration to where the VM is).
          if (at === to) return { online: await runsOn(to, vmid) };
          const online = (await pve.vmStatus(at, vmid)).status === 'running';
          upid = online ? await pve.migrateRunningVm(at, vmid, to) : await pve.migrateVm(at, vmid, to);
        } catch (err) {
          if (err instanceof ApplicationFailure) throw err;
          throw pveFailure(err, { ...s, node: from }, doing, 'VM.Migrate');
        }
        await awaitTask(pve, upid, s, doing, settings);
      }
      const ctx = Context.current();
      const deadline = Date.now() + HA_ARRIVAL_S * 1000;
      let delay = settings.pollMinMs;
      for (;;) {
        let at: string | undefined;
        try {
          at = await whereIs(vmid);
        } catch (err) {
          throw pveFailure(err, s, doing);
        }
        // A running VM moves online and keeps running; a stopped one moves offline: how it moved, even after a restart.
        if (at === to)
          return {
            online: await runsOn(to, vmid).catch((err) => {
              throw pveFailure(err, s, doing);
            }),
          };
        if (Date.now() > deadline) {
          throw ApplicationFailure.create({
            type: ErrorType.WaitTimedOut,
            nonRetryable: true,
            message: `${describe(s)}: Proxmox's migration task ended but the VM is on ${at ?? 'no node'}, not ${to}, ${HA_ARRIVAL_S} s later; check ha-manager status and the task log.`,
          });
        }
        ctx.heartbeat({ arriving: to });
        await sleep(delay, undefined, { signal: ctx.cancellationSignal });
        delay = Math.min(settings.pollMaxMs, Math.round(delay * 1.5));
      }
    },
  };
}
