import type { NetbirdClient, NetbirdGroup, NetbirdUser } from '../../clients/netbird';
import { createOrAdoptGroup } from './lookups';
import type { UserGroupWriter } from './userGroups';

/**
 * Each consultant's standing NetBird group: `pveflow-consultant-<email>`, in their user's auto_groups, so that
 * every machine they register (and, with groups propagation, every one they have) is in it. It is made and given to
 * the user the first time that consultant is granted anything; after that a grant only names it as a policy source
 * and writes no user. Every writer adds the same group, so a lost update between two workers (NetBird's
 * `PUT /api/users/{id}` has no compare-and-swap) loses nothing. The group belongs to the consultant, like the user:
 * no request removes it, and without a policy it grants nothing.
 */
export function standingGroupName(email: string): string {
  return `${STANDING_GROUP_PREFIX}${email.toLowerCase()}`;
}

export const STANDING_GROUP_PREFIX = 'pveflow-consultant-';

interface Cache {
  /** Group name → id, as this worker last found or made it. Trusted only while the user holds the id (below). */
  ids: Map<string, string>;
  /** Names being resolved right now: concurrent grants for the same new consultant wait for one resolution. */
  resolving: Map<string, Promise<string>>;
}

/**
 * The standing group ids this worker process knows: built once in the composition root (src/worker.ts) and shared
 * by every activity, so that a consultant's group is looked up once per process, not once per grant.
 */
export class StandingGroups {
  private readonly cache: Cache = { ids: new Map(), resolving: new Map() };

  constructor(
    private readonly netbird: NetbirdClient,
    private readonly userGroups: UserGroupWriter,
  ) {}

  /**
   * The standing group id of each user (in the order given), made and added to the user's auto_groups where needed.
   * `users` is the list as read at `readAt` (performance.now()). A cached id is trusted only when the user as just
   * read holds it: NetBird refuses to delete a group that a user still holds, so it exists. The misses cost one
   * lookup together (a name-filtered one for a single miss), then a create and a user write only for a consultant
   * seen for the first time (or whose group was removed behind pveflow's back).
   */
  async ids(users: NetbirdUser[], readAt: number): Promise<string[]> {
    const cache = this.cache;
    const answers = new Map<string, Promise<string>>();
    const misses: NetbirdUser[] = [];
    for (const user of users) {
      const name = standingGroupName(user.email);
      if (answers.has(name)) continue;
      const cached = cache.ids.get(name);
      const pending = cache.resolving.get(name);
      if (cached && user.auto_groups.includes(cached)) answers.set(name, Promise.resolve(cached));
      else if (pending) answers.set(name, pending);
      else misses.push(user);
    }
    if (misses.length > 0) {
      const batch = resolveMisses(this.netbird, this.userGroups, misses, readAt);
      for (const user of misses) {
        const name = standingGroupName(user.email);
        const id = batch.then((ids) => ids.get(name)!);
        cache.resolving.set(name, id);
        const settled = () => {
          if (cache.resolving.get(name) === id) cache.resolving.delete(name);
        };
        void id.then((found) => (cache.ids.set(name, found), settled()), settled);
        answers.set(name, id);
      }
    }
    return Promise.all(users.map((u) => answers.get(standingGroupName(u.email))!));
  }

  /** Drops cached ids (a policy showed that the group vanished): the next grant looks them up again. */
  forget(ids: string[]): void {
    for (const [name, id] of this.cache.ids) if (ids.includes(id)) this.cache.ids.delete(name);
  }
}

async function resolveMisses(netbird: NetbirdClient, userGroups: UserGroupWriter, users: NetbirdUser[], readAt: number): Promise<Map<string, string>> {
  const names = users.map((u) => standingGroupName(u.email));
  // NetBird's `name` filter takes one name: one miss is looked up alone, several with one read of all groups.
  const groups = await netbird.listGroups(names.length === 1 ? { name: names[0] } : {});
  const ids = new Map<string, string>();
  for (const [i, user] of users.entries()) {
    const name = names[i]!;
    const named = groups.filter((g) => g.name === name);
    // A same-named group the user already holds is the one (an integration or JWT group may share the name).
    let group: NetbirdGroup | undefined = named.find((g) => user.auto_groups.includes(g.id)) ?? named[0];
    group ??= (await createOrAdoptGroup(netbird, name)).group;
    const id = group.id;
    if (!user.auto_groups.includes(id)) await userGroups.change({ user, readAt }, (held) => [...held, id]);
    ids.set(name, id);
  }
  return ids;
}
