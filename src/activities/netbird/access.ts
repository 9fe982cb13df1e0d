import { whileHeartbeating } from '../heartbeating';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { NetbirdGroup, NetbirdPolicy, NetbirdUser } from '../../clients/netbird';
import { deviceNames } from '../../domain/deviceNames';
import { ErrorType } from '../../errors';
import type { ActivityDeps } from '../deps';
import { isFinalRefusal, netbirdFailure, step } from './failures';
import { ensureGroup } from './lookups';
import { vpnObjectNames } from '../../domain/vpnObjects';
import type { DeviceGroupSeen } from './peer';
import { accessPolicy, ensurePolicy } from './policy';
import { standingGroupName } from './standingGroups';

export interface GrantVpnAccessInput {
  serial: string;
  name: string;
  peerId: string;
  consultants: string[];
  /** waitForPeer's `deviceGroup`, when the workflow passes it on: the device group need not be read again. */
  deviceGroup?: DeviceGroupSeen;
  /** prepareCloudInit's `deviceGroupCreated`: the build made the device group, so no earlier policy points at it. */
  deviceGroupCreated?: boolean;
}

export interface GrantVpnAccessResult {
  /** Consultants with no NetBird user (setting `report`): no access until they sign up and the request is rebuilt. */
  missingConsultants: string[];
  /** Consultants (as written on the request) whose standing group is a source of the request's policy. */
  grantedConsultants: string[];
  /** The policy that grants the access, by name; null when no consultant has a NetBird user: nobody to grant. */
  policy: string | null;
}

export interface RevokeVpnAccessResult {
  /** Each NetBird object that could not be removed, with what NetBird said; empty when nothing is left. */
  leftovers: string[];
  /** What this attempt removed (an earlier attempt of the same activity may have removed the rest). */
  removed: string[];
}

/**
 * The access model: the VM's peer alone in `device-<id>`; each consultant's NetBird user carrying their standing
 * group `pveflow-consultant-<email>` in its auto_groups (made the first time that consultant is granted anything,
 * see standingGroups.ts); and per request one one-way policy whose sources are the standing groups of the request's
 * consultants and whose destination is the device group, so the VM can never open a connection back to a
 * consultant's machine. A build writes no user once its consultants have been granted before.
 *
 * How the consultants' machines get into their standing groups: a user's auto_groups are the groups NetBird gives
 * the peers that user registers; with the account setting `groups_propagation_enabled` (on in current NetBird),
 * adding a group to a user's auto_groups also moves the peers that user already has. pveflow relies on it and never
 * lists a consultant's peers itself.
 *
 * Requests granted before the standing groups (by a per-request `consultants-<id>` group in the consultants'
 * auto_groups) are still cleaned up by `revokeVpnAccess`.
 */
export function accessActivities({ netbird, settings, netbirdGroups }: Pick<ActivityDeps, 'netbird' | 'settings' | 'netbirdGroups'>) {
  const { standingGroups, userGroups } = netbirdGroups;
  return {
    /**
     * Idempotent: every object is found by name (or created, and adopted when NetBird says it exists) and corrected
     * when it differs. The policy is created without a lookup only when none can exist yet: on the activity's first
     * attempt, in a device group this build made, seen holding the new VM alone. A policy left by an earlier build
     * points at a group the build adopted: with the earlier VM's peer still in it, or without it when a revoke
     * deleted the peer but NetBird refused to delete the policy (and therefore the group).
     */
    async grantVpnAccess({ serial, name, peerId, consultants, deviceGroup, deviceGroupCreated }: GrantVpnAccessInput): Promise<GrantVpnAccessResult> {
      const names = deviceNames(serial, name);
      const firstLook = firstAttempt() && deviceGroupCreated === true && deviceGroup?.peersCount === 1;
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

      if (found.length === 0) {
        // Nobody to grant: no policy. One left by an earlier attempt or build would grant what the request no longer does.
        if (!firstLook) {
          await step(serial, `removing NetBird policy ${names.policy}`, async () => {
            for (const p of (await netbird.listPolicies()).filter((p) => p.name === names.policy)) await netbird.deletePolicy(p.id);
          });
        }
        return { missingConsultants: missing, grantedConsultants: [], policy: null };
      }

      const emails = found.map((f) => f.user.email.toLowerCase());
      const sources = await step(serial, `giving ${emails.join(', ')} their standing NetBird group (${standingGroupName('<email>')})`, () =>
        standingGroups.ids(
          found.map((f) => f.user),
          readAt,
        ),
      );
      const wanted = accessPolicy({
        name: names.policy,
        description: `pveflow ${serial}: consultants may reach ${names.hostname}; never the other way round`,
        sourceGroupIds: sources,
        deviceGroupId: device.id,
      });
      let policy: NetbirdPolicy;
      try {
        policy = firstLook ? await netbird.createPolicy(wanted) : await ensurePolicy(netbird, wanted);
      } catch (err) {
        // A NetBird that refuses a vanished group instead of dropping it: look the groups up again on the retry.
        const named = [...sources, ...emails.map(standingGroupName)];
        if (isFinalRefusal(err) && named.some((group) => err.netbirdMessage.includes(group))) {
          standingGroups.forget(sources);
          throw vanishedGroups(serial, names.policy, err.netbirdMessage);
        }
        throw netbirdFailure(err, serial, `setting NetBird policy ${names.policy}`);
      }
      // NetBird keeps only the group ids that exist: a standing group deleted since the users were read is missing
      // from the policy it answers with. The retry reads the users again and makes the group anew.
      const kept = new Set((policy.rules[0]?.sources ?? []).map((g) => g.id));
      const lost = sources.filter((id) => !kept.has(id));
      if (lost.length > 0) {
        standingGroups.forget(sources);
        throw vanishedGroups(serial, names.policy, `sources ${lost.join(', ')} no longer exist`);
      }
      return { missingConsultants: missing, grantedConsultants: found.map((f) => f.email), policy: names.policy };
    },

    /**
     * Removes every NetBird trace of the request, in the order NetBird allows (a group still used by a policy, a
     * setup key or a user cannot be deleted). What NetBird refuses for good is named in `leftovers` with its words,
     * and the rest still goes. A retryable failure (429, 5xx, no answer) is thrown as retryable: Temporal retries
     * the activity, and since every step finds its object by name again, the retry resumes where this one stopped.
     * The consultants' standing groups stay: they belong to the consultants, and without the policy grant nothing.
     */
    async revokeVpnAccess({ serial, name }: { serial: string; name: string }): Promise<RevokeVpnAccessResult> {
      return whileHeartbeating(async () => {
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
          // Only peers the request's setup key made (its auto_groups put them in the device group): a same-named
          // peer elsewhere is someone else's machine, never deleted.
          const peers = (await netbird.peersNamed(names.hostname)).filter((p) => p.groups.some((g) => g.name === names.deviceGroup));
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

        // One read of the groups finds both the device group and, for a request granted before the standing groups,
        // its `consultants-<id>` (NetBird's name filter takes one name: two filtered reads would cost a call more).
        let groups: NetbirdGroup[] | undefined;
        try {
          groups = await netbird.listGroups();
        } catch (err) {
          settle(err, [objects.deviceGroup]);
        }
        const team = groups?.find((g) => g.name === names.consultantsGroup);
        if (team) {
          let users: NetbirdUser[] = [];
          const readAt = performance.now();
          try {
            users = await netbird.listUsers();
          } catch (err) {
            settle(err, [objects.membership, objects.consultantsGroup]);
          }
          for (const user of users.filter((u) => u.auto_groups.includes(team.id))) {
            await remove(objects.membershipOf(user.email), async () => {
              await userGroups.change({ user, readAt }, (held) => held.filter((g) => g !== team.id));
              return true;
            });
          }
          await remove(objects.consultantsGroup, async () => {
            await netbird.deleteGroup(team.id);
            return true;
          });
        }
        const device = groups?.find((g) => g.name === names.deviceGroup);
        if (device) {
          await remove(objects.deviceGroup, async () => {
            await netbird.deleteGroup(device.id);
            return true;
          });
        }
        return { leftovers, removed };
      });
    },
  };
}

/** Whether this is the activity's first attempt (a direct call outside Temporal counts as one). */
function firstAttempt(): boolean {
  try {
    return Context.current().info.attempt <= 1;
  } catch {
    return true;
  }
}

/** Retryable: the retry reads the users again, and the standing groups are found or made anew. */
function vanishedGroups(serial: string, policy: string, said: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: ErrorType.NetbirdTransient,
    message: `setting NetBird policy ${policy} for request ${serial}: a consultant's standing group was deleted meanwhile (NetBird: ${said}); looking it up again`,
  });
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
