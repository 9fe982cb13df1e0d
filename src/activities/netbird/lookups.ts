import { NetbirdApiError, type NetbirdClient, type NetbirdGroup } from '../../clients/netbird';

/**
 * Find-by-name before create: what makes every NetBird activity safe to retry. A create that loses a race with
 * another attempt (NetBird answers 409 for a second group of the same name) takes the winner's group.
 */
export async function ensureGroup(netbird: NetbirdClient, name: string): Promise<NetbirdGroup> {
  const found = await findGroup(netbird, name);
  if (found) return found;
  try {
    return await netbird.createGroup({ name, peers: [] });
  } catch (err) {
    const winner = err instanceof NetbirdApiError && err.status === 409 ? await findGroup(netbird, name) : undefined;
    if (winner) return winner;
    throw err;
  }
}

export async function findGroup(netbird: NetbirdClient, name: string): Promise<NetbirdGroup | undefined> {
  return (await netbird.listGroups({ name })).find((g) => g.name === name);
}
