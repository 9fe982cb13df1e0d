import { z } from 'zod';

/**
 * Fault injection by class (issue 4 §7, reference §6 and §8.1): each class reproduces one real-world failure of a
 * Proxmox VE cluster, with PVE's placement (HTTP error vs. task error) and texts, rather than random 500s. Faults
 * are targetable (node, vmid, task type, route) and countable (`times`: how many operations they hit; unlimited
 * when omitted, except `taskFailure`, which has always defaulted to 1). The same schema validates the in-process
 * API (`sim.faults.set`) and the control endpoint (`POST /_sim/faults`).
 */
const vmid = z.number().int().min(100).max(999_999_999);
const node = z.string().min(1);
const times = z.number().int().positive();
/** `METHOD /path/template` exactly as the API schema names it, e.g. `PUT /nodes/{node}/qemu/{vmid}/config`. */
const route = z.string().regex(/^(GET|POST|PUT|DELETE) \/\S*$/, 'expected "METHOD /path/template"');

export const faultSetSchema = z
  .object({
    /** The task of `type` ends with `error` after its POST answered 200 (+ UPID). `id` matches the UPID's id. */
    taskFailure: z.object({ type: z.string(), id: z.string().optional(), node: node.optional(), vmid: vmid.optional(), error: z.string(), times: times.optional() }).strict(),
    /** The task of `type` succeeds with `count` warnings (`WARNINGS: n`), e.g. a volume deactivation that warned. */
    taskWarnings: z.object({ type: z.string(), vmid: vmid.optional(), node: node.optional(), count: z.number().int().positive().optional(), times: times.optional() }).strict(),
    /** Someone holds the config flock of `vmid`: every operation that needs it waits its timeout and fails. */
    lockTimeout: z.object({ vmid, node: node.optional(), times: times.optional() }).strict(),
    /** The storage lock of `storage` cannot be had: disk allocations fail (local: flock, shared: cfs-lock text). */
    storageLockTimeout: z.object({ storage: z.string(), node: node.optional(), times: times.optional() }).strict(),
    /** `storage` (on `node`, for a local storage) is full: `avail` 0 and allocations fail like its plugin does. */
    noSpace: z.object({ storage: z.string(), node: node.optional() }).strict(),
    /** Downloads (`download-url`) to `storage` (on `node`) arrive at `bytesPerSecond`: slow enough to watch, or to stop. */
    slowDownload: z.object({ bytesPerSecond: z.number().int().positive(), storage: z.string().optional(), node: node.optional() }).strict(),
    /** `node` is down: `offline` in listings, 595/596 on proxied calls, its VMs stale in `/cluster/resources`. */
    nodeOffline: z.object({ node, error: z.enum(['refused', 'no-route', 'timeout']).optional() }).strict(),
    /** Writes fail with `cluster not ready - no quorum?` (on `node`, or cluster-wide without one). */
    quorumLoss: z.object({ node: node.optional() }).strict(),
    /** The guest agent of the next matching started VMs never answers (not installed / broken). */
    agentNeverStarts: z.object({ vmid: vmid.optional(), node: node.optional(), times: times.optional() }).strict(),
    /** Another client takes the id `GET /cluster/nextid` just answered, as a racing client would. */
    nextidRace: z.object({ node: node.optional(), times: times.optional() }).strict(),
    /** The worker of a matching task is killed (daemon restart, node crash): `unexpected status`, locks left behind. */
    workerKilled: z.object({ taskType: z.string(), vmid: vmid.optional(), node: node.optional(), times: times.optional() }).strict(),
    /** A synchronous call outlives the 30 s proxy timeout: 596 to the client while the work completes. */
    slowSync: z.object({ route, node: node.optional(), vmid: vmid.optional(), times: times.optional() }).strict(),
    /** Every (matching) API request is answered `ms` later. */
    latency: z.object({ ms: z.number().int().nonnegative(), route: route.optional() }).strict(),
    /** A share of (matching) API requests fails with a 5xx; deterministic: exactly `rate` of them, evenly spread. */
    errorRate: z
      .object({
        rate: z.number().gt(0).max(1),
        status: z.number().int().min(500).max(599).optional(),
        message: z.string().optional(),
        route: route.optional(),
        times: times.optional(),
      })
      .strict(),
  })
  .partial()
  .strict();

export type FaultSet = z.infer<typeof faultSetSchema>;
export type FaultClass = keyof FaultSet;
export type TaskFailureFault = NonNullable<FaultSet['taskFailure']>;

/** What an operation offers for matching: absent fields never exclude a fault that names them. */
export interface FaultScope {
  node?: string;
  vmid?: number;
  taskType?: string;
  /** The UPID's id field (for `qmclone` the source vmid). */
  id?: string;
  route?: string;
  storage?: string;
}

interface Active<K extends FaultClass> {
  kind: K;
  spec: NonNullable<FaultSet[K]>;
  left: number;
  since: number;
  /** Requests seen (errorRate). */
  seen: number;
}

type AnyActive = { [K in FaultClass]: Active<K> }[FaultClass];

export class Faults {
  private active: AnyActive[] = [];

  /** Adds faults (validated; throws on a malformed one). Several faults of one class may be active at once. */
  set(faults: FaultSet): void {
    const parsed = faultSetSchema.parse(faults);
    const now = Date.now();
    for (const kind of Object.keys(parsed) as FaultClass[]) {
      const spec = parsed[kind];
      if (spec === undefined) continue;
      const given = (spec as { times?: number }).times;
      const left = given ?? (kind === 'taskFailure' ? 1 : Number.POSITIVE_INFINITY);
      this.active.push({ kind, spec, left, since: now, seen: 0 } as AnyActive);
    }
  }

  /** Removes every fault, or those of one class. */
  clear(kind?: FaultClass): void {
    this.active = kind ? this.active.filter((f) => f.kind !== kind) : [];
  }

  /** The active faults, as JSON (for `GET /_sim/faults`). */
  list(): { kind: FaultClass; spec: unknown; left: number | null; since: string }[] {
    return this.active.map((f) => ({ kind: f.kind, spec: f.spec, left: Number.isFinite(f.left) ? f.left : null, since: new Date(f.since).toISOString() }));
  }

  /** The first matching fault of `kind` without using it up (state faults: node offline, quorum, no space). */
  peek<K extends FaultClass>(kind: K, scope: FaultScope = {}): (NonNullable<FaultSet[K]> & { since: number }) | undefined {
    const f = this.find(kind, scope);
    return f ? { ...f.spec, since: f.since } : undefined;
  }

  /** The first matching fault of `kind`, counting one use against its `times`. */
  take<K extends FaultClass>(kind: K, scope: FaultScope = {}): NonNullable<FaultSet[K]> | undefined {
    const f = this.find(kind, scope);
    if (!f) return undefined;
    f.left--;
    return f.spec;
  }

  /** errorRate: whether this request is one of the failing share (every 1/rate-th matching request). */
  takeError(scope: FaultScope): NonNullable<FaultSet['errorRate']> | undefined {
    const f = this.find('errorRate', scope);
    if (!f) return undefined;
    const spec = f.spec as NonNullable<FaultSet['errorRate']>;
    f.seen++;
    if (Math.floor(f.seen * spec.rate) === Math.floor((f.seen - 1) * spec.rate)) return undefined;
    f.left--;
    return spec;
  }

  /** Kept for the first fault API: the error text of an injected failure of this task, if any. */
  takeTaskFailure(type: string, id: string, scope: FaultScope = {}): string | undefined {
    return this.take('taskFailure', { ...scope, taskType: type, id })?.error;
  }

  private find<K extends FaultClass>(kind: K, scope: FaultScope): Active<K> | undefined {
    const f = this.active.find((a) => a.kind === kind && a.left > 0 && matches(a.spec as Record<string, unknown>, kind, scope));
    return f as Active<K> | undefined;
  }
}

function matches(spec: Record<string, unknown>, kind: FaultClass, scope: FaultScope): boolean {
  const same = (want: unknown, have: unknown) => want === undefined || have === undefined || want === have;
  const strict = (want: unknown, have: unknown) => want === undefined || want === have;
  if (kind === 'taskFailure') {
    return strict(spec.type, scope.taskType) && strict(spec.id, scope.id) && strict(spec.node, scope.node) && strict(spec.vmid, scope.vmid);
  }
  if (kind === 'workerKilled') {
    return strict(spec.taskType, scope.taskType) && strict(spec.node, scope.node) && (spec.vmid === undefined || spec.vmid === scope.vmid || String(spec.vmid) === scope.id);
  }
  if (kind === 'slowDownload') return strict(spec.storage, scope.storage) && strict(spec.node, scope.node);
  if (kind === 'storageLockTimeout' || kind === 'noSpace') {
    return strict(spec.storage, scope.storage) && same(spec.node, scope.node);
  }
  if (kind === 'lockTimeout') return strict(spec.vmid, scope.vmid) && same(spec.node, scope.node);
  if (kind === 'nodeOffline') return strict(spec.node, scope.node);
  if (kind === 'quorumLoss') return spec.node === undefined || spec.node === scope.node;
  // nextidRace's `node` says where the other client creates its VM, not which requests it applies to.
  if (kind === 'nextidRace') return true;
  return strict(spec.route, scope.route) && strict(spec.node, scope.node) && strict(spec.vmid, scope.vmid);
}
