import { NetbirdApiError, type NetbirdClient } from '../../clients/netbird';
import { deviceNames } from '../../domain/deviceRequest';
import type { ActivityDeps } from '../deps';
import { netbirdFailure, step } from './failures';
import { ensureGroup, findGroup } from './lookups';

export interface GrantVpnAccessInput {
  serial: string;
  name: string;
  peerId: string;
  consultants: string[];
}

/**
 * The access model of the seeds: the VM's peer in `device-<id>`, the consultants' NetBird users carrying
 * `consultants-<id>`, and one one-way policy from consultants to device, so the VM can never open a connection back
 * to a consultant's machine. Each object is found by name before it is created.
 */
export function accessActivities({ netbird }: ActivityDeps) {
  return {
    async grantVpnAccess({ serial, name, peerId, consultants }: GrantVpnAccessInput): Promise<{ missingConsultants: string[] }> {
      const names = deviceNames(serial, name);
      return step(serial, 'granting VPN access', async () => {
        const device = await ensureGroup(netbird, names.deviceGroup);
        const members = device.peers.map((p) => p.id);
        if (!members.includes(peerId)) {
          await netbird.updateGroup(device.id, { name: device.name, peers: [...members, peerId] });
        }
        const team = await ensureGroup(netbird, names.consultantsGroup);
        const users = await netbird.listUsers();
        const missingConsultants: string[] = [];
        for (const email of consultants) {
          const user = users.find((u) => u.email.toLowerCase() === email.toLowerCase());
          if (!user) {
            missingConsultants.push(email);
            continue;
          }
          if (!user.auto_groups.includes(team.id)) {
            await netbird.updateUser(user.id, { role: user.role, is_blocked: user.is_blocked, auto_groups: [...user.auto_groups, team.id] });
          }
        }
        const policies = await netbird.listPolicies();
        if (!policies.some((p) => p.name === names.policy)) {
          await netbird.createPolicy({
            name: names.policy,
            description: `pveflow ${serial}: consultants may reach ${names.hostname}; never the other way round`,
            enabled: true,
            rules: [
              {
                name: names.policy,
                enabled: true,
                action: 'accept',
                bidirectional: false,
                protocol: 'all',
                sources: [team.id],
                destinations: [device.id],
              },
            ],
          });
        }
        return { missingConsultants };
      });
    },

    /**
     * Removes every NetBird trace of the request, in the order NetBird allows (a group still used by a policy, a
     * setup key or a user cannot be deleted). Transient errors retry the whole (idempotent) activity; what NetBird
     * refuses for good is named in `leftovers` and the rest still goes.
     */
    async revokeVpnAccess({ serial, name }: { serial: string; name: string }): Promise<{ leftovers: string[] }> {
      const names = deviceNames(serial, name);
      const leftovers: string[] = [];
      const attempt = async (what: string, fn: () => Promise<unknown>) => {
        try {
          await fn();
        } catch (err) {
          if (err instanceof NetbirdApiError && err.notFound) return; // gone already: that is the goal
          if (err instanceof NetbirdApiError && !err.retryable) leftovers.push(`${what} (${err.netbirdMessage})`);
          else throw netbirdFailure(err, serial, `removing ${what}`);
        }
      };

      await attempt(`NetBird peer ${names.hostname}`, async () => {
        for (const peer of await netbird.peersNamed(names.hostname)) await netbird.deletePeer(peer.id);
      });
      await attempt(`NetBird policy ${names.policy}`, async () => {
        for (const p of (await netbird.listPolicies()).filter((p) => p.name === names.policy)) await netbird.deletePolicy(p.id);
      });
      await attempt(`NetBird setup key ${names.setupKey}`, async () => {
        for (const k of (await netbird.listSetupKeys()).filter((k) => k.name === names.setupKey)) await netbird.deleteSetupKey(k.id);
      });
      const team = await findGroup(netbird, names.consultantsGroup).catch((err) => {
        throw netbirdFailure(err, serial, `looking up ${names.consultantsGroup}`);
      });
      if (team) {
        await attempt(`${names.consultantsGroup} in the consultants' NetBird users`, () => dropFromUsers(netbird, team.id));
        await attempt(`NetBird group ${names.consultantsGroup}`, () => netbird.deleteGroup(team.id));
      }
      await attempt(`NetBird group ${names.deviceGroup}`, async () => {
        const device = await findGroup(netbird, names.deviceGroup);
        if (device) await netbird.deleteGroup(device.id);
      });
      return { leftovers };
    },
  };
}

async function dropFromUsers(netbird: NetbirdClient, groupId: string): Promise<void> {
  for (const user of await netbird.listUsers()) {
    if (!user.auto_groups.includes(groupId)) continue;
    await netbird.updateUser(user.id, { role: user.role, is_blocked: user.is_blocked, auto_groups: user.auto_groups.filter((g) => g !== groupId) });
  }
}
