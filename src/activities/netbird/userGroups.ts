import type { NetbirdClient, NetbirdUser } from '../../clients/netbird';

/**
 * Changing one NetBird user's auto_groups safely: a consultant's first grant adds their standing group, and the
 * cleanup of a request granted before the standing groups removes its `consultants-<id>`. NetBird's
 * `PUT /api/users/{id}` replaces the whole list and has no version check, so two changes to the same consultant at
 * once would each write back the list they read, and one would silently be lost. Changes to one user are therefore
 * funnelled through one queue per user in this worker process: whatever piles up while a write is under way is
 * applied together in the next write, on top of what NetBird answered to the last one, so twenty cleanups for the
 * same consultant cost a few NetBird calls, not forty. (Workers in other processes can still interleave; NetBird
 * offers no compare-and-swap to close that gap. Between two first grants that is harmless: both add the same group.)
 */

type Change = (groups: string[]) => string[];

/** The user as the caller read it, and when: fresh enough when this worker has not written the user since. */
export interface UserSnapshot {
  user: NetbirdUser;
  readAt: number;
}

interface Waiting {
  snapshot: UserSnapshot;
  change: Change;
  settle: (outcome: { user: NetbirdUser | undefined } | { error: unknown }) => void;
}

interface Queues {
  waiting: Map<string, Waiting[]>;
  /**
   * Each user as NetBird answered this worker's last write of it, and when; `user` undefined when that write failed
   * (it may or may not have landed, so only a new read tells).
   */
  lastWrite: Map<string, { at: number; user: NetbirdUser | undefined }>;
}

/**
 * The per-user queues of one worker process: built once in the composition root (src/worker.ts) and shared by every
 * activity, since the queues only help when all changes of the process go through them.
 */
export class UserGroupWriter {
  private readonly queues: Queues = { waiting: new Map(), lastWrite: new Map() };

  constructor(private readonly netbird: NetbirdClient) {}

  /** Applies `change` to the user's current auto_groups; undefined when the user no longer exists. */
  change(snapshot: UserSnapshot, change: Change): Promise<NetbirdUser | undefined> {
    const q = this.queues;
    const userId = snapshot.user.id;
    return new Promise((resolve, reject) => {
      const waiting: Waiting = { snapshot, change, settle: (o) => ('error' in o ? reject(o.error) : resolve(o.user)) };
      const queue = q.waiting.get(userId);
      if (queue) {
        queue.push(waiting);
        return;
      }
      q.waiting.set(userId, [waiting]);
      void drain(this.netbird, q, userId);
    });
  }
}

async function drain(netbird: NetbirdClient, q: Queues, userId: string): Promise<void> {
  for (let queue = q.waiting.get(userId); queue?.length; queue = q.waiting.get(userId)) {
    const batch = queue.splice(0);
    try {
      const user = await applyAll(netbird, q, userId, batch);
      for (const w of batch) w.settle({ user });
    } catch (error) {
      for (const w of batch) w.settle({ error });
    }
  }
  q.waiting.delete(userId);
}

async function applyAll(netbird: NetbirdClient, q: Queues, userId: string, batch: Waiting[]): Promise<NetbirdUser | undefined> {
  // The newest thing this worker knows of the user is the base: the freshest snapshot the callers read, or what
  // NetBird answered to this worker's own last write when that came later. Either saves a read per change; only a
  // write that failed since forces one (builds for the same consultants otherwise read the users list twice).
  const newest = batch.reduce((a, b) => (b.snapshot.readAt > a.snapshot.readAt ? b : a)).snapshot;
  const written = q.lastWrite.get(userId);
  const known = written && written.at > newest.readAt ? written.user : newest.user;
  const user = known ?? (await netbird.listUsers()).find((u) => u.id === userId);
  if (!user) return undefined;
  const changes = batch.map((w) => w.change);
  const next = [...new Set(changes.reduce((groups, change) => change(groups), user.auto_groups))];
  const same = next.length === user.auto_groups.length && next.every((g) => user.auto_groups.includes(g));
  if (same) return user;
  try {
    // NetBird replaces role, auto_groups and is_blocked together: send the user's own values back.
    const updated = await netbird.updateUser(user.id, { role: user.role, is_blocked: user.is_blocked, auto_groups: next });
    q.lastWrite.set(userId, { at: performance.now(), user: updated });
    return updated;
  } catch (err) {
    // Even a failed write may have landed: snapshots older than this are not to be trusted, nor is a guess.
    q.lastWrite.set(userId, { at: performance.now(), user: undefined });
    throw err;
  }
}
