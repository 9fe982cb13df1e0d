import { ApplicationFailure, Context } from '@temporalio/activity';
import { setTimeout as sleep } from 'node:timers/promises';
import { deviceNames } from '../../domain/deviceRequest';
import { ErrorType } from '../../errors';
import type { ActivityDeps } from '../deps';
import { step } from './failures';

export interface VpnPeer {
  peerId: string;
  vpnIp: string;
  vpnHostname: string;
}

/**
 * Waits until the VM has joined NetBird with its setup key (cloud-init runs `netbird up` at first boot). Bounded:
 * a VM that never joins fails the build with what to check, rather than waiting forever.
 */
export function peerActivities({ netbird, settings }: ActivityDeps) {
  return {
    async waitForPeer({ serial, name }: { serial: string; name: string }): Promise<VpnPeer> {
      const { hostname } = deviceNames(serial, name);
      const ctx = Context.current();
      const deadline = Date.now() + settings.peerWaitSeconds * 1000;
      let delay = settings.pollMinMs;
      for (;;) {
        const peers = await step(serial, `looking for NetBird peer ${hostname}`, () => netbird.peersNamed(hostname));
        const peer = peers.at(-1);
        if (peer) return { peerId: peer.id, vpnIp: peer.ip, vpnHostname: peer.dns_label };
        ctx.heartbeat();
        if (Date.now() + delay > deadline) {
          throw ApplicationFailure.create({
            type: ErrorType.WaitTimedOut,
            nonRetryable: true,
            message:
              `VM ${hostname} of request ${serial} did not join NetBird within ${settings.peerWaitSeconds} s (NETBIRD_PEER_WAIT_S). ` +
              `Check the VM's cloud-init log (/var/log/cloud-init-output.log) and that it reaches ${settings.netbirdManagementUrl}.`,
          });
        }
        await sleep(delay, undefined, { signal: ctx.cancellationSignal });
        delay = Math.min(settings.pollMaxMs, Math.round(delay * 1.5));
      }
    },
  };
}
