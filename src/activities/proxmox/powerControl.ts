import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { PveClient } from '../../clients/pve';
import { ErrorType } from '../../errors';
import type { ActivityDeps, ActivitySettings } from '../deps';
import { describe, pveFailure } from './failures';
import type { VmRef } from './power';
import { earlierTask, taskFailure, taskOutcome } from './runTask';

export type PowerState = 'running' | 'stopped';

/** A graceful action that may meet a guest which ignores it: how long it gets before pveflow stops it. */
export interface GracefulRef extends VmRef {
  timeoutSeconds: number;
}

/**
 * The day-2 power actions beside the build's `startVm`: a hard stop, a graceful shutdown and a reboot, each with a
 * stop as its fallback once the guest has had `timeoutSeconds`. Each looks at the VM before it acts (a stopped VM
 * is not stopped again), waits on the task an earlier attempt started (its UPID heartbeated) before deciding, and
 * ends only once the VM is in the state it asked for: an HA-managed VM's `hastop`/`hastart` task ends before the HA
 * stack acts.
 */
export function powerControlActivities({ pve, settings }: ActivityDeps) {
  const polls = settings;

  async function statusOf(ref: VmRef, doing: string): Promise<PowerState> {
    try {
      return (await pve.vmStatus(ref.node, ref.vmid)).status;
    } catch (err) {
      throw pveFailure(err, ref, doing);
    }
  }

  /** Starts a Proxmox power task and waits for it; false when it failed with the guest's shutdown timeout. */
  async function power(ref: VmRef, action: 'start' | 'stop' | 'shutdown' | 'reboot', doing: string, timeoutSeconds?: number): Promise<boolean> {
    let upid: string;
    try {
      upid = await pve.vmPower(ref.node, ref.vmid, action, timeoutSeconds === undefined ? {} : { timeout: timeoutSeconds });
    } catch (err) {
      throw pveFailure(err, ref, doing);
    }
    const outcome = await taskOutcome(pve, upid, polls);
    if (outcome.ok) return true;
    if (timedOut(outcome.exitstatus)) return false;
    // Starting what an earlier attempt already started is what we wanted.
    if (action === 'start' && /already running/.test(outcome.exitstatus)) return true;
    throw taskFailure(outcome, ref, doing);
  }

  async function stopHard(ref: VmRef): Promise<void> {
    await power(ref, 'stop', 'stopping the VM');
    await settle(pve, ref, 'stopped', 60, polls);
  }

  return {
    async stopVm(ref: VmRef): Promise<PowerState> {
      await earlierTask(pve, polls);
      if ((await statusOf(ref, 'stopping the VM')) === 'stopped') return 'stopped';
      await stopHard(ref);
      return 'stopped';
    },

    /** ACPI, or the guest agent when it answers (Proxmox chooses); after `timeoutSeconds` a hard stop. */
    async shutdownGuest(ref: GracefulRef): Promise<{ power: PowerState; outcome: string }> {
      const earlier = await earlierTask(pve, polls);
      if ((await statusOf(ref, 'shutting the VM down')) === 'stopped') {
        return { power: 'stopped', outcome: earlier?.ok ? 'the guest shut down' : 'the VM was already stopped' };
      }
      // An earlier attempt already gave the guest its time: no second wait.
      const graceful = earlier && timedOut(earlier.exitstatus) ? false : await power(ref, 'shutdown', 'shutting the VM down', ref.timeoutSeconds);
      if (graceful) {
        await settle(pve, ref, 'stopped', ref.timeoutSeconds + 60, polls);
        return { power: 'stopped', outcome: 'the guest shut down' };
      }
      await stopHard(ref);
      return { power: 'stopped', outcome: `the guest did not shut down within ${ref.timeoutSeconds} s: stopped` };
    },

    /**
     * Restarts the guest, which also applies the config changes waiting for it (`status/reboot` does; a reboot from
     * inside the guest would not). A guest that does not go down in time is stopped and started; a stopped VM is
     * started.
     */
    async rebootVm(ref: GracefulRef): Promise<{ power: PowerState; outcome: string }> {
      const earlier = await earlierTask(pve, polls);
      if ((await statusOf(ref, 'rebooting the VM')) === 'stopped') {
        await power(ref, 'start', 'starting the VM');
        await settle(pve, ref, 'running', 120, polls);
        return { power: 'running', outcome: earlier?.ok ? 'rebooted' : 'the VM was stopped: started' };
      }
      if (earlier?.ok) return { power: 'running', outcome: 'rebooted' };
      const graceful = earlier && timedOut(earlier.exitstatus) ? false : await power(ref, 'reboot', 'rebooting the VM', ref.timeoutSeconds);
      if (graceful) {
        // qmeventd starts the guest again after the task has ended.
        await settle(pve, ref, 'running', 120, polls);
        return { power: 'running', outcome: 'rebooted' };
      }
      await stopHard(ref);
      await power(ref, 'start', 'starting the VM');
      await settle(pve, ref, 'running', 120, polls);
      return { power: 'running', outcome: `the guest did not restart within ${ref.timeoutSeconds} s: stopped and started` };
    },
  };
}

/** Proxmox's words for a guest that ignored a shutdown (qemu-server `vm_stop`). */
function timedOut(exitstatus: string): boolean {
  return /got timeout/.test(exitstatus) && /quit\/powerdown|shutdown/i.test(exitstatus);
}

/**
 * Waits (heartbeating) until the VM is `want`: an HA-managed VM gets there after its HA task has ended. A VM that
 * never does is for an operator: HA may be holding it in another state.
 */
export async function settle(pve: PveClient, ref: VmRef, want: PowerState, boundSeconds: number, poll: Pick<ActivitySettings, 'pollMinMs' | 'pollMaxMs'>): Promise<void> {
  const ctx = Context.current();
  const deadline = Date.now() + boundSeconds * 1000;
  let delay = poll.pollMinMs;
  for (;;) {
    let now: PowerState;
    try {
      now = (await pve.vmStatus(ref.node, ref.vmid)).status;
    } catch (err) {
      throw pveFailure(err, ref, `waiting for the VM to be ${want}`);
    }
    if (now === want) return;
    if (Date.now() > deadline) {
      throw ApplicationFailure.create({
        type: ErrorType.WaitTimedOut,
        nonRetryable: true,
        message: `${describe(ref)} is still ${now} ${boundSeconds} s after Proxmox's task ended; check the VM's HA state (ha-manager status) and its task log.`,
      });
    }
    ctx.heartbeat({ settling: want });
    await sleep(delay, undefined, { signal: ctx.cancellationSignal });
    delay = Math.min(poll.pollMaxMs, Math.round(delay * 1.5));
  }
}
