import { ApplicationFailure } from '@temporalio/activity';
import type { NetbirdGroup, NetbirdUser } from '../../clients/netbird';
import { deviceNames } from '../../domain/deviceRequest';
import { ErrorType } from '../../errors';
import type { ActivityDeps } from '../deps';
import { isFinalRefusal, netbirdFailure, step } from './failures';
import { createOrAdoptGroup, ensureGroup, findGroup } from './lookups';
import { vpnObjectNames } from '../../domain/vpnObjects';
import type { DeviceGroupSeen } from './peer';
import { accessPolicy, ensurePolicy } from './policy';
import { changeAutoGroups } from './userGroups';

export interface GrantVpnAccessInput {
  serial: string;
  name: string;
  peerId: string;
  consultants: string[];
  /** waitForPeer's `deviceGroup`, when the workflow passes it on: the device group need not be read again. */
  deviceGroup?: DeviceGroupSeen;
}

export interface GrantVpnAccessResult {
  /** Consultants with no NetBird user (setting `report`): no access until they sign up and the request is rebuilt. */
  missingConsultants: string[];
  /** Consultants whose NetBird user now carries `consultants-<id>` (as written on the request). */
  grantedConsultants: string[];
}

export interface RevokeVpnAccessResult {
  /** Each NetBird object that could not be removed, with what NetBird said; empty when nothing is left. */
  leftovers: string[];
  /** What this attempt removed (an earlier attempt of the same activity may have removed the rest). */
  removed: string[];
}

/**
 * The access model of the seeds: the VM's peer alone in `device-<id>`, the consultants' NetBird users carrying
 * `consultants-<id>` in their auto_groups, and one one-way policy from consultants to device, so the VM can never
 * open a connection back to a consultant's machine.
 *
 * How the consultants' machines get into `consultants-<id>`: a user's auto_groups are the groups NetBird gives the
 * peers that user registers; with the account setting `groups_propagation_enabled` (on in current NetBird), adding
 * or removing a group in a user's auto_groups also moves the peers that user already has. pveflow relies on it and
 * never lists a consultant's peers itself.
 */
export function accessActivities({ netbird, settings }: Pick<ActivityDeps, 'netbird' | 'settings'>) {
  return {
    /**
     * Idempotent: every object is found by name (or created, and adopted when NetBird says it exists) and corrected
     * when it differs. The device group, made before the VM booted, is read; the consultants group and the policy,
     * normally absent, are created first.
     */
    async grantVpnAccess({ serial, name, peerId, consultants, deviceGroup }: GrantVpnAccessInput): Promise<GrantVpnAccessResult> {
      const names = deviceNames(serial, name);
      const readAt = performance.now();
      const users = await step(serial, 'listing NetBird users', () => netbird.listUsers());
      const { found, missing } = matchConsultants(consultants, users);
      if (missing.length > 0 && settings.missingConsultant === 'fail') {
        throw ApplicationFailure.create({
          type: ErrorType.InvalidRequest,
          nonRetryable: true,
          message:
            `Request ${serial}: no NetBird user for ${missing.join(', ')}, and NETBIRD_MISSING_CONSULTANT=fail. ` +
            `Invite ${missing.length > 1 ? 'them' : 'this consultant'} to NetBird (Team > Users > Invite user) with the ` +
            `same e-mail address as on the request, then rebuild the request.`,
          details: [{ missingConsultants: missing }],
        });
      }

      const device = await step(serial, `making NetBird group ${names.deviceGroup} hold VM peer ${peerId} alone`, async () => {
        // The peer list showed the VM in its group, and nobody else in it: nothing to read or correct.
        if (deviceGroup?.peersCount === 1) return { id: deviceGroup.id };
        const group = await ensureGroup(netbird, names.deviceGroup);
        const members = group.peers.map((p) => p.id);
        if (members.length === 1 && members[0] === peerId) return group;
        // Exactly the VM: a stale peer left in the group would be reachable by the consultants too.
        return netbird.updateGroup(group.id, { name: group.name, peers: [peerId] });
      });
      const { group: team, created: teamIsNew } = await step(serial, `creating NetBird group ${names.consultantsGroup}`, () =>
        createOrAdoptGroup(netbird, names.consultantsGroup),
      );
      for (const { user } of found) {
        if (user.auto_groups.includes(team.id)) continue;
        await step(serial, `adding ${names.consultantsGroup} to the auto_groups of NetBird user ${user.email}`, () =>
          changeAutoGroups(netbird, { user, readAt }, (groups) => [...groups, team.id]),
        );
      }
      const wanted = accessPolicy({
        name: names.policy,
        description: `pveflow ${serial}: consultants may reach ${names.hostname}; never the other way round`,
        consultantsGroupId: team.id,
        deviceGroupId: device.id,
      });
      // A policy needs its groups: with the consultants group made just now, no earlier attempt got as far as one.
      await step(serial, `setting NetBird policy ${names.policy}`, () => (teamIsNew ? netbird.createPolicy(wanted) : ensurePolicy(netbird, wanted)));
      return { missingConsultants: missing, grantedConsultants: found.map((f) => f.email) };
    },

    /**
     * Removes every NetBird trace of the request, in the order NetBird allows (a group still used by a policy, a
     * setup key or a user cannot be deleted). What NetBird refuses for good is named in `leftovers` with its words,
     * and the rest still goes. A retryable failure (429, 5xx, no answer) is thrown as retryable: Temporal retries
     * the activity, and since every step finds its object by name again, the retry resumes where this one stopped.
     */
    async revokeVpnAccess({ serial, name }: { serial: string; name: string }): Promise<RevokeVpnAccessResult> {
      const names = deviceNames(serial, name);
      const objects = vpnObjectNames(serial, name);
      const leftovers: string[] = [];
      const removed: string[] = [];
      /** A final refusal becomes a leftover for each object it leaves behind; anything retryable is thrown. */
      const settle = (err: unknown, left: string[]) => {
        if (!isFinalRefusal(err)) throw netbirdFailure(err, serial, `removing ${left.join(', ')}`);
        const said = `${err.status ?? 'no answer'} ${err.netbirdMessage}`;
        for (const what of left) leftovers.push(`${what} (NetBird: ${said})`);
      };
      /** `fn` answers whether it found something to remove; a 404 means another attempt got there first. */
      const remove = async (what: string, fn: () => Promise<boolean>) => {
        try {
          if (await fn()) removed.push(what);
        } catch (err) {
          if (!(isFinalRefusal(err) && err.notFound)) settle(err, [what]);
        }
      };

      await remove(objects.peer, async () => {
        const peers = await netbird.peersNamed(names.hostname);
        for (const peer of peers) await netbird.deletePeer(peer.id);
        return peers.length > 0;
      });
      await remove(objects.policy, async () => {
        const policies = (await netbird.listPolicies()).filter((p) => p.name === names.policy);
        for (const policy of policies) await netbird.deletePolicy(policy.id);
        return policies.length > 0;
      });
      await remove(objects.setupKey, async () => {
        const keys = (await netbird.listSetupKeys()).filter((k) => k.name === names.setupKey);
        for (const key of keys) await netbird.deleteSetupKey(key.id);
        return keys.length > 0;
      });

      let team: NetbirdGroup | undefined;
      let users: NetbirdUser[] = [];
      let readAt = 0;
      try {
        team = await findGroup(netbird, names.consultantsGroup);
        readAt = performance.now();
        if (team) users = await netbird.listUsers();
      } catch (err) {
        settle(err, [objects.membership, objects.consultantsGroup]);
      }
      if (team) {
        const teamId = team.id;
        for (const user of users.filter((u) => u.auto_groups.includes(teamId))) {
          await remove(objects.membershipOf(user.email), async () => {
            await changeAutoGroups(netbird, { user, readAt }, (groups) => groups.filter((g) => g !== teamId));
            return true;
          });
        }
        await remove(objects.consultantsGroup, async () => {
          await netbird.deleteGroup(teamId);
          return true;
        });
      }
      await remove(objects.deviceGroup, async () => {
        const device = await findGroup(netbird, names.deviceGroup);
        if (device) await netbird.deleteGroup(device.id);
        return device !== undefined;
      });
      return { leftovers, removed };
    },
  };
}

function matchConsultants(consultants: string[], users: NetbirdUser[]) {
  const found: Array<{ email: string; user: NetbirdUser }> = [];
  const missing: string[] = [];
  const seen = new Set<string>();
  for (const email of consultants) {
    const key = email.toLowerCase();
    if (seen.has(key)) continue;
    seen.add(key);
    const user = users.find((u) => u.email.toLowerCase() === key);
    if (user) found.push({ email, user });
    else missing.push(email);
  }
  return { found, missing };
}
