import { NetbirdApiError, type NetbirdClient, type NetbirdGroup } from '../../clients/netbird';

/**
 * Find-by-name before create: what makes every NetBird activity safe to retry. A create that loses a race with
 * another attempt (NetBird answers 409 for a second group of the same name) takes the winner's group. For a group
 * that normally exists already.
 */
export async function ensureGroup(netbird: NetbirdClient, name: string): Promise<NetbirdGroup> {
  const found = await findGroup(netbird, name);
  if (found) return found;
  return (await createOrAdoptGroup(netbird, name)).group;
}

/**
 * Create first, for a group that normally does not exist yet: one call instead of a lookup and a create. NetBird
 * refuses a second group of the same name with 409 ("group with name ... already exists"), and then the one an
 * earlier attempt made is adopted. `created` tells the caller more: a group made just now is referred to by nothing
 * (no policy, setup key or user), since NetBird refuses to delete a group that something still refers to — so no
 * leftover of an earlier attempt can be pointing at it, and the lookups for such leftovers can be skipped.
 */
export async function createOrAdoptGroup(netbird: NetbirdClient, name: string): Promise<{ group: NetbirdGroup; created: boolean }> {
  try {
    return { group: await netbird.createGroup({ name, peers: [] }), created: true };
  } catch (err) {
    const existing = err instanceof NetbirdApiError && err.status === 409 ? await findGroup(netbird, name) : undefined;
    if (existing) return { group: existing, created: false };
    throw err;
  }
}

export async function findGroup(netbird: NetbirdClient, name: string): Promise<NetbirdGroup | undefined> {
  return (await netbird.listGroups({ name })).find((g) => g.name === name);
}
