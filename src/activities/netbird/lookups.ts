import type { NetbirdClient, NetbirdGroup } from '../../clients/netbird';

/** Find-by-name before create: what makes every NetBird activity safe to retry. */
export async function ensureGroup(netbird: NetbirdClient, name: string): Promise<NetbirdGroup> {
  const found = (await netbird.listGroups({ name })).find((g) => g.name === name);
  return found ?? netbird.createGroup({ name, peers: [] });
}

export async function findGroup(netbird: NetbirdClient, name: string): Promise<NetbirdGroup | undefined> {
  return (await netbird.listGroups({ name })).find((g) => g.name === name);
}
