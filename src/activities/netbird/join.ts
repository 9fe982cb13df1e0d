import { ApplicationFailure, CancelledFailure } from '@temporalio/activity';
import type { ActivityDeps } from '../deps';
import { accessActivities, type GrantVpnAccessInput, type GrantVpnAccessResult } from './access';
import { peerActivities, type VpnPeer, type WaitForPeerInput } from './peer';

export type JoinVpnInput = WaitForPeerInput & Pick<GrantVpnAccessInput, 'consultants' | 'deviceGroupCreated'>;

export interface JoinVpnResult {
  peer: VpnPeer;
  access: GrantVpnAccessResult;
  /** The grant's own time, for the worker's build stage metrics (observability/activityMetrics.ts): its stage is vpn-access. */
  laterStages: Array<{ stage: 'vpn-access'; ms: number }>;
}

/** What a joinVpn that failed in its grant carries in its failure's details: the build then says it failed granting. */
export interface GrantFailedAfterJoin {
  stage: 'vpn-access';
  peer: VpnPeer;
}

/**
 * The grant's failure, as the grant would have failed on its own (same message, type and retryability: the retry
 * policy decides by type), with the stage and the peer in its details for the build's log.
 */
function grantFailure(err: unknown, peer: VpnPeer): unknown {
  if (err instanceof CancelledFailure) return err;
  const failed: GrantFailedAfterJoin = { stage: 'vpn-access', peer };
  if (err instanceof ApplicationFailure) {
    return ApplicationFailure.create({ message: err.message, type: err.type ?? undefined, nonRetryable: err.nonRetryable ?? undefined, details: [...(err.details ?? []), failed], cause: err });
  }
  const error = err instanceof Error ? err : new Error(String(err));
  return ApplicationFailure.create({ message: error.message, type: error.name, details: [failed], cause: error });
}

/**
 * The build's VPN step as one activity (one billable Action, not two): wait until the VM joined NetBird, then grant
 * its consultants one-way access to it. Each half is idempotent, so a retry waits again (the peer is there at once)
 * and grants again (found by name, corrected where it differs).
 */
export function vpnJoinActivities(deps: Pick<ActivityDeps, 'netbird' | 'settings' | 'netbirdGroups'> & Partial<Pick<ActivityDeps, 'pve'>>) {
  const { waitForPeer } = peerActivities(deps);
  const { grantVpnAccess } = accessActivities(deps);
  return {
    async joinVpn({ consultants, deviceGroupCreated, ...wait }: JoinVpnInput): Promise<JoinVpnResult> {
      const peer = await waitForPeer(wait);
      const grantStarted = performance.now();
      let access: GrantVpnAccessResult;
      try {
        access = await grantVpnAccess({
          serial: wait.serial,
          name: wait.name,
          peerId: peer.peerId,
          consultants,
          // The device group as the peer list showed it: the grant need not read it again.
          ...(peer.deviceGroup ? { deviceGroup: peer.deviceGroup } : {}),
          ...(deviceGroupCreated !== undefined ? { deviceGroupCreated } : {}),
        });
      } catch (err) {
        throw grantFailure(err, peer);
      }
      return { peer, access, laterStages: [{ stage: 'vpn-access', ms: Math.round(performance.now() - grantStarted) }] };
    },
  };
}
