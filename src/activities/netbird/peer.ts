import { ApplicationFailure, Context } from '@temporalio/activity';
import { setTimeout as sleep } from 'node:timers/promises';
import { NetbirdApiError } from '../../clients/netbird';
import { deviceNames } from '../../domain/deviceNames';
import { ErrorType } from '../../errors';
import type { ActivityDeps } from '../deps';
import { cloudInitLogReport } from '../proxmox/guestLog';
import { isFinalRefusal, netbirdFailure } from './failures';

export interface VpnPeer {
  peerId: string;
  vpnIp: string;
  vpnHostname: string;
  /**
   * The device group as the peer list showed it (the setup key put the VM there): handing it to grantVpnAccess
   * saves that activity reading the group again. Absent when the peer was in no group of that name.
   */
  deviceGroup?: DeviceGroupSeen;
}

export interface DeviceGroupSeen {
  id: string;
  peersCount?: number;
}

/** Carried in heartbeats so that a retried attempt keeps the first attempt's deadline instead of starting anew. */
interface WaitProgress {
  deadline: number;
}

export interface WaitForPeerInput {
  serial: string;
  name: string;
  /** Where the VM runs: given, a VM that never joins fails with its cloud-init log's tail (read through the agent). */
  vm?: { node: string; vmid: number };
}

/**
 * Waits until the VM has joined NetBird with its setup key (cloud-init runs `netbird up` at first boot). Bounded:
 * a VM that never joins fails the build with what to check, rather than waiting forever. NetBird being briefly
 * unreachable while we poll is not the VM's fault: polling goes on until the deadline.
 */
export function peerActivities({ netbird, settings, pve }: Pick<ActivityDeps, 'netbird' | 'settings'> & Partial<Pick<ActivityDeps, 'pve'>>) {
  return {
    async waitForPeer({ serial, name, vm }: WaitForPeerInput): Promise<VpnPeer> {
      const { hostname, deviceGroup } = deviceNames(serial, name);
      const ctx = Context.current();
      const resumed = ctx.info.heartbeatDetails as Partial<WaitProgress> | undefined;
      const deadline = typeof resumed?.deadline === 'number' ? resumed.deadline : Date.now() + settings.peerWaitSeconds * 1000;
      let delay = settings.pollMinMs;
      let unanswered: NetbirdApiError | undefined;
      for (;;) {
        try {
          const peers = await netbird.peersNamed(hostname);
          unanswered = undefined;
          // Only the request's setup key puts a peer in its device group (the key's auto_groups): a peer of that name
          // outside the group joined some other way, and is never taken for the VM, however long it is the only one.
          const ours = peers.filter((p) => p.groups.some((g) => g.name === deviceGroup));
          const peer = ours.at(-1);
          if (peer) {
            const group = peer.groups.find((g) => g.name === deviceGroup);
            const seen = group && { id: group.id, ...(group.peers_count === undefined ? {} : { peersCount: group.peers_count }) };
            return { peerId: peer.id, vpnIp: peer.ip, vpnHostname: peer.dns_label, ...(seen ? { deviceGroup: seen } : {}) };
          }
        } catch (err) {
          if (isFinalRefusal(err) || !(err instanceof NetbirdApiError)) throw netbirdFailure(err, serial, `looking for NetBird peer ${hostname}`);
          unanswered = err;
        }
        ctx.heartbeat({ deadline } satisfies WaitProgress);
        if (Date.now() + delay > deadline) {
          if (unanswered) {
            throw ApplicationFailure.create({
              type: ErrorType.WaitTimedOut,
              nonRetryable: true,
              message:
                `VM ${hostname} of request ${serial} did not join NetBird within ${settings.peerWaitSeconds} s (NETBIRD_PEER_WAIT_S). ` +
                `NetBird itself did not answer at the end (${unanswered.message}); check NetBird, then rebuild the request.`,
            });
          }
          // The guest got an address but never joined: cloud-init did not finish, or `netbird up` failed. Its log says which.
          const log = vm && pve ? await cloudInitLogReport(pve, vm) : undefined;
          const check = `Check that the VM reaches ${settings.netbirdManagementUrl}.`;
          throw ApplicationFailure.create({
            type: ErrorType.WaitTimedOut,
            nonRetryable: true,
            message:
              `VM ${hostname} of request ${serial} did not join NetBird within ${settings.peerWaitSeconds} s (NETBIRD_PEER_WAIT_S). ` +
              (log ? `${check} ${log.text}` : `Check the VM's cloud-init log (/var/log/cloud-init-output.log) and that it reaches ${settings.netbirdManagementUrl}.`),
            details: log ? [{ cloudInitLog: log.tail ?? null, cloudInitLogUnreadable: log.unreadable ?? null }] : [],
          });
        }
        await sleep(delay, undefined, { signal: ctx.cancellationSignal });
        delay = Math.min(settings.pollMaxMs, Math.round(delay * 1.5));
      }
    },
  };
}
