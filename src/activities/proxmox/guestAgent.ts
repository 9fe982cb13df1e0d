import { ApplicationFailure, Context } from '@temporalio/activity';
import { setTimeout as sleep } from 'node:timers/promises';
import { PveApiError, type GuestInterfaces } from '../../clients/pve';
import { ErrorType } from '../../errors';
import type { ActivityDeps } from '../deps';
import { describe, pveFailure } from './failures';
import { cloudInitLogReport } from './guestLog';
import type { VmRef } from './power';

/**
 * Waits until the guest agent reports a usable IPv4. "Agent not running" and "no IPv4 yet" mean "not ready yet"
 * (the agent typically answers 10–90 s after boot); the wait is bounded and then fails with what was last seen.
 * Polling happens here, heartbeating, not in workflow timers: it keeps the history small.
 */
export function guestAgentActivities({ pve, settings }: ActivityDeps) {
  return {
    async waitForGuestIp(ref: VmRef): Promise<string> {
      const timeoutSeconds = settings.guestIpWaitSeconds;
      const ctx = Context.current();
      const deadline = Date.now() + timeoutSeconds * 1000;
      let delay = settings.pollMinMs;
      let lastSeen: string;
      let agentAnswered = false;
      for (;;) {
        try {
          const ifaces = await pve.guestNetworkInterfaces(ref.node, ref.vmid);
          const ip = firstUsableIpv4(ifaces);
          if (ip) return ip;
          agentAnswered = true;
          lastSeen = `the agent answers but reports no usable IPv4 address (${describeInterfaces(ifaces)})`;
        } catch (err) {
          if (!(err instanceof PveApiError) || !['agentNotRunning', 'notRunning', 'locked', 'lockTimeout', 'proxy', 'transport'].includes(err.errorClass)) {
            throw pveFailure(err, ref, 'reading the guest agent');
          }
          lastSeen = err.pveMessage || err.message;
        }
        ctx.heartbeat({ lastSeen });
        if (Date.now() + delay > deadline) {
          // An agent that answered can read the guest's own account of its boot; one that never did cannot.
          const log = agentAnswered ? await cloudInitLogReport(pve, ref) : undefined;
          throw ApplicationFailure.create({
            type: ErrorType.WaitTimedOut,
            nonRetryable: true,
            message:
              `the guest of ${describe(ref)} reported no IPv4 within ${timeoutSeconds} s (GUEST_IP_WAIT_S) (last: ${lastSeen}). ` +
              `Check that the template has qemu-guest-agent installed and enabled, and that the VM gets a DHCP lease. ` +
              (log ? log.text : 'The guest agent never answered, so nothing of the guest’s own logs could be read.'),
            details: log ? [{ cloudInitLog: log.tail ?? null, cloudInitLogUnreadable: log.unreadable ?? null }] : [],
          });
        }
        await sleep(delay, undefined, { signal: ctx.cancellationSignal });
        delay = Math.min(settings.pollMaxMs, Math.round(delay * 1.5));
      }
    },
  };
}

/** The interfaces the agent reported, as `name: addresses` (`none` for no address): what a failure shows. */
function describeInterfaces(ifaces: GuestInterfaces): string {
  const listed = ifaces.result.map((i) => `${i.name}: ${(i['ip-addresses'] ?? []).map((a) => `${a['ip-address']}/${a.prefix ?? '?'}`).join(', ') || 'none'}`);
  return listed.length ? listed.join('; ') : 'no interfaces';
}

export function firstUsableIpv4(ifaces: GuestInterfaces): string | undefined {
  for (const iface of ifaces.result) {
    if (iface.name === 'lo') continue;
    for (const addr of iface['ip-addresses'] ?? []) {
      const ip = addr['ip-address'];
      if (addr['ip-address-type'] !== 'ipv4') continue;
      if (ip.startsWith('127.') || ip.startsWith('169.254.')) continue;
      return ip;
    }
  }
  return undefined;
}
