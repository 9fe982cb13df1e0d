import { failureMessage } from './failureMessage';
import { log, proxyActivities, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { createActivities } from '../activities';
import { vpnObjectsOf } from '../domain/vpnObjects';
import { deviceNames } from '../domain/deviceNames';
import { shutdownTimeoutOf } from '../domain/requestPolicyRules';
import { cleanup, completionTask } from './activityOptions';
import { alreadyShown, completionSearchAttributes } from '../contracts/searchAttributes';
import type { VmCompletionInput, VmCompletionResult } from '../contracts/types';

type Activities = ReturnType<typeof createActivities>;
const task = proxyActivities<Activities>(completionTask);
const tidy = proxyActivities<Activities>(cleanup);

/**
 * The end of a lease, as the seeds' completion runbook: shut the guest down (hard stop if it ignores us), destroy
 * the VM with its disks, remove its cloud-init snippet, then every NetBird trace. Each step is retried; a step that
 * still fails is recorded and the next one runs, so the result says exactly what was left behind.
 */
export async function vmCompletion(input: VmCompletionInput): Promise<VmCompletionResult> {
  const { serial, name, vmid, node } = input;
  const names = deviceNames(serial, name);
  const leftovers: string[] = [];
  let vmDestroyed = vmid === undefined;
  // Started with them by its request (from 1.1): upserted only when it was not.
  const attributes = completionSearchAttributes(serial);
  if (!alreadyShown(attributes, workflowInfo().typedSearchAttributes)) upsertSearchAttributes(attributes);

  const attempt = async (what: string, step: () => Promise<unknown>, sayWhy = false) => {
    try {
      await step();
      return true;
    } catch (err) {
      // The activity's own message (what Proxmox or the node said) where the label alone cannot say where it is.
      const cause = failureMessage(err);
      leftovers.push(sayWhy ? `${what} (${cause})` : what);
      log.warn(`completion of ${serial} left ${what}`, { error: cause, workflowId: workflowInfo().workflowId });
      return false;
    }
  };

  if (vmid !== undefined && node !== undefined) {
    // Out of HA first: HA would otherwise restart the VM pveflow stops (and HA stops only request a stop).
    // Unless its build said it made none. One made by hand since is removed with the VM all the same (destroyVm's purge=1).
    if (input.haResource !== false) await attempt(`HA resource vm:${vmid}`, () => tidy.removeFromHa({ serial, vmid, node }));
    await attempt(`VM ${vmid} still running on ${node}`, () => task.shutdownVm({ serial, vmid, node, timeoutSeconds: shutdownTimeoutOf(input) }));
    vmDestroyed = await attempt(`VM ${vmid} on ${node}`, () => task.destroyVm({ serial, name, vmid, node }));
    if (vmDestroyed) leftovers.splice(0, leftovers.length); // a destroyed VM is no longer running
    // Looked for on every node: a VM migrated behind pveflow's back may have left it anywhere.
    await attempt(`cloud-init snippet ${names.snippetFile}`, () => tidy.removeSnippet({ serial, name, node }), true);
  }
  // What failed builds could not destroy, now that nothing else will: after the request's own VM, before NetBird
  // (a VM that booted with its setup key may still join until it is gone).
  for (const left of input.leftoverVms ?? []) {
    if (left.vmid === vmid) continue;
    if (!(await attempt(`VM ${left.vmid} on ${left.node} (left by a failed build)`, () => task.destroyVm({ serial, name, vmid: left.vmid, node: left.node })))) continue;
    await attempt(`cloud-init snippet ${names.snippetFile} on ${left.node}`, () => tidy.removeSnippet({ serial, name, node: left.node }));
  }
  // NetBird down through every retry: name each object that may remain, so an operator knows what to remove.
  const vpn = await tidy.revokeVpnAccess({ serial, name }).catch((err: Error) => ({ leftovers: vpnObjectsOf(serial, name).map((o) => `${o} (NetBird unreachable: ${failureMessage(err)})`) }));
  leftovers.push(...vpn.leftovers);
  return { vmDestroyed, leftovers };
}
