import { whileHeartbeating } from '../heartbeating';
import { ApplicationFailure } from '@temporalio/activity';
import { PveApiError } from '../../clients/pve';
import { ErrorType } from '../../errors';
import type { ActivityDeps } from '../deps';
import { powerActivities } from './power';
import { describe, pveFailure, type Subject } from './failures';

export interface HaInput {
  serial: string;
  vmid: number;
  node: string;
}

/**
 * Makes the request's VM an HA resource when PVE_HA / PVE_HA_GROUP ask for it (proxmox-behaviour.md §4.17), and
 * takes it out again. Both are synchronous calls and idempotent: a resource already defined is what we wanted, one
 * already gone is what we wanted. Destroying an HA VM needs `purge=1`, which destroyVm always passes, so a VM whose
 * HA undo never ran still leaves no HA resource behind.
 */
export function haActivities(deps: ActivityDeps) {
  const { pve, settings } = deps;
  const { startVm } = powerActivities(deps);
  const activities = {
    /** `added: false` when HA is not configured; the workflow registers the undo only for an added resource. */
    async addToHa({ serial, vmid, node }: HaInput): Promise<{ added: boolean; group?: string }> {
      if (!settings.ha) return { added: false };
      const s = { serial, vmid, node };
      try {
        await pve.addHaResource({ sid: `vm:${vmid}`, state: 'started', group: settings.ha.group, comment: `pveflow ${serial}` });
      } catch (err) {
        // An earlier attempt of this activity got as far as Proxmox before its answer was lost.
        if (err instanceof PveApiError && /already defined/.test(err.pveMessage)) return { added: true, group: settings.ha.group };
        throw haFailure(err, s, `adding VM ${vmid} to HA${settings.ha.group ? ` group ${settings.ha.group}` : ''}`);
      }
      return { added: true, group: settings.ha.group };
    },

    /**
     * Removes the VM's HA resource; the VM itself is left alone (the VM undo destroys it). With HA off it asks
     * nothing (the token may lack Sys.Console): pveflow made no HA resource then, and one left from when HA was on
     * goes with the VM, whose destroy passes purge=1.
     */
    async removeFromHa({ serial, vmid, node }: HaInput): Promise<'removed' | 'absent'> {
      return whileHeartbeating(async () => {
        if (!settings.ha) return 'absent';
        try {
          await pve.removeHaResource(`vm:${vmid}`);
        } catch (err) {
          if (err instanceof PveApiError && /not HA managed|no such resource/.test(err.pveMessage)) return 'absent';
          throw haFailure(err, { serial, vmid, node }, `removing VM ${vmid} from HA`);
        }
        return 'removed';
      });
    },
  };
  return {
    ...activities,
    /**
     * The build's `starting` stage in one activity: the VM started, then made an HA resource (as addToHa). One
     * step, one task queue round trip and no local activity marker of its own; both halves are idempotent, so a
     * retry redoes neither (a running VM is not started again, a resource already defined is what we wanted).
     */
    async startVmUnderHa(ref: HaInput): Promise<{ added: boolean; group?: string }> {
      await startVm(ref);
      return activities.addToHa(ref);
    },
  };
}

/** HA is the one place pveflow needs a privilege on `/`: say which, and how to grant it or do without. */
function haFailure(err: unknown, s: Subject, doing: string): ApplicationFailure {
  if (err instanceof PveApiError && (err.errorClass === 'permission' || err.errorClass === 'auth')) {
    return ApplicationFailure.create({
      type: ErrorType.PvePermissionDenied,
      nonRetryable: true,
      message:
        `${doing} for ${describe(s)}: Proxmox said "${err.pveMessage}". HA resources need Sys.Console on / (not only on the ` +
        `pool): as root, 'pveum role add PveflowHA --privs Sys.Console,Sys.Audit' and 'pveum acl modify / --roles PveflowHA ` +
        `--propagate 0 --users <token user> --tokens <PVE_TOKEN_ID>' (a privilege-separated token needs it on both); or turn HA ` +
        `off by unsetting PVE_HA and PVE_HA_GROUP. Then rebuild.`,
    });
  }
  if (err instanceof PveApiError && /group .*(does not exist|not defined)|no such (ha )?group/i.test(err.pveMessage)) {
    return ApplicationFailure.create({
      type: ErrorType.PveInvalidParameter,
      nonRetryable: true,
      message: `${doing} for ${describe(s)}: Proxmox said "${err.pveMessage}". Create the HA group in Datacenter > HA or fix PVE_HA_GROUP, then rebuild.`,
    });
  }
  return pveFailure(err, s, doing);
}
