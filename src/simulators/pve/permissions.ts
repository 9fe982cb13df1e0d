import { permissionError } from './errors';
import type { AclSeed } from './seed';

/**
 * PVE's permission model (pve-access-control `AccessControl.pm`, `RPCEnvironment.pm`): roles are sets of
 * privileges; an ACL grants a role on a path to a user or token; the most specific path with an ACL for the
 * subject wins (propagating ACLs reach below their path); pool ACLs reach the pool's member VMs and storages; a
 * privilege-separated token gets the intersection of its own and its user's privileges; `root@pam` has all.
 */
const VM_PRIVS = [
  'VM.Allocate',
  'VM.Audit',
  'VM.Backup',
  'VM.Clone',
  'VM.Config.CDROM',
  'VM.Config.CPU',
  'VM.Config.Cloudinit',
  'VM.Config.Disk',
  'VM.Config.HWType',
  'VM.Config.Memory',
  'VM.Config.Network',
  'VM.Config.Options',
  'VM.Console',
  'VM.Migrate',
  'VM.PowerMgmt',
  'VM.Snapshot',
  'VM.Snapshot.Rollback',
  'VM.Replicate',
  'VM.GuestAgent.Audit',
  'VM.GuestAgent.FileRead',
  'VM.GuestAgent.FileWrite',
  'VM.GuestAgent.FileSystemMgmt',
  'VM.GuestAgent.Unrestricted',
];
const DATASTORE_PRIVS = ['Datastore.Allocate', 'Datastore.AllocateSpace', 'Datastore.AllocateTemplate', 'Datastore.Audit'];
const SYS_PRIVS = ['Sys.Audit', 'Sys.Console', 'Sys.Incoming', 'Sys.Modify', 'Sys.PowerMgmt', 'Sys.Syslog', 'Sys.AccessNetwork'];
const OTHER_PRIVS = [
  'Pool.Allocate',
  'Pool.Audit',
  'SDN.Allocate',
  'SDN.Audit',
  'SDN.Use',
  'Permissions.Modify',
  'User.Modify',
  'Group.Allocate',
  'Realm.Allocate',
  'Realm.AllocateUser',
  'Mapping.Audit',
  'Mapping.Modify',
  'Mapping.Use',
];

export const ROLES: Record<string, readonly string[]> = {
  Administrator: [...VM_PRIVS, ...DATASTORE_PRIVS, ...SYS_PRIVS, ...OTHER_PRIVS],
  NoAccess: [],
  PVEAuditor: ['VM.Audit', 'Datastore.Audit', 'Sys.Audit', 'Pool.Audit', 'SDN.Audit', 'Mapping.Audit', 'VM.GuestAgent.Audit'],
  PVEVMAdmin: VM_PRIVS,
  PVEVMUser: ['VM.Audit', 'VM.Backup', 'VM.Config.CDROM', 'VM.Config.Cloudinit', 'VM.Console', 'VM.PowerMgmt', 'VM.GuestAgent.Audit'],
  PVEDatastoreAdmin: DATASTORE_PRIVS,
  PVEDatastoreUser: ['Datastore.AllocateSpace', 'Datastore.Audit'],
  PVEPoolAdmin: ['Pool.Allocate', 'Pool.Audit'],
  PVEPoolUser: ['Pool.Audit'],
  PVESDNUser: ['SDN.Audit', 'SDN.Use'],
  PVESDNAdmin: ['SDN.Allocate', 'SDN.Audit', 'SDN.Use'],
};

/** Who is asking: the user, and for token auth the token name. */
export interface Identity {
  userid: string;
  tokenName?: string;
  privsep: boolean;
}

export function authId(identity: Identity): string {
  return identity.tokenName ? `${identity.userid}!${identity.tokenName}` : identity.userid;
}

/** Answers pool membership, so that pool ACLs can reach member VMs and storages. */
export interface PoolMembership {
  poolOfVm(vmid: number): string | undefined;
  poolsOfStorage(storage: string): string[];
}

const ALL_PRIVILEGES: ReadonlySet<string> = new Set(ROLES.Administrator);

export class PermissionEngine {
  private readonly acls: AclSeed[];
  /** subject → path → ACLs there: a listing checks 10,000 paths, so the walk must not scan every ACL per level. */
  private index = new Map<string, Map<string, AclSeed[]>>();
  /**
   * Privileges of a subject on a VM without ACLs of its own depend only on the ACLs above `/vms` and on its pool,
   * so they are memoized per (subject, pool), other paths per (subject, path); both are dropped whenever ACLs
   * change. That is what keeps a 10,000-VM listing for a pool token fast.
   */
  private vmMemo = new Map<string, Set<string>>();
  private intersections = new WeakMap<Set<string>, WeakMap<Set<string>, Set<string>>>();

  /** Built-in roles plus the seed's own (`pveum role add`); a custom role may not shadow a built-in one. */
  private readonly roles: Record<string, readonly string[]>;

  constructor(
    acls: AclSeed[],
    private readonly pools: PoolMembership,
    customRoles: Record<string, readonly string[]> = {},
  ) {
    this.acls = acls.map((a) => ({ ...a, path: normalizePath(a.path) }));
    for (const name of Object.keys(customRoles)) {
      if (ROLES[name]) throw new Error(`custom role '${name}' would shadow the built-in role of that name`);
    }
    this.roles = { ...customRoles, ...ROLES };
    this.reindex();
  }

  /** Every path an ACL names (for `GET /access/permissions` without `path`). */
  aclPaths(): string[] {
    return [...new Set(this.acls.map((a) => a.path))];
  }

  /**
   * The privileges `identity` holds on `path`, each with whether it propagates below it — what
   * `GET /access/permissions` answers (`RPCEnvironment.pm permissions`). A privsep token's privilege propagates
   * only where both its own and its user's grant do.
   */
  effectivePrivileges(identity: Identity, path: string): Record<string, 0 | 1> {
    const p = normalizePath(path);
    if (identity.userid === 'root@pam' && (!identity.tokenName || !identity.privsep)) {
      return Object.fromEntries([...ALL_PRIVILEGES].map((priv) => [priv, 1 as const]));
    }
    const user = this.subjectPropagation(identity.userid, p);
    const granted = identity.tokenName && identity.privsep ? intersect(this.subjectPropagation(authId(identity), p), user) : user;
    return Object.fromEntries([...granted].map(([priv, propagate]) => [priv, propagate ? 1 : 0]));
  }

  private subjectPropagation(subject: string, path: string): Map<string, boolean> {
    const out = this.walkWithPropagation(subject, path);
    const vm = /^\/vms\/(\d+)$/.exec(path);
    const storage = /^\/storage\/([^/]+)$/.exec(path);
    const pools = vm ? [this.pools.poolOfVm(Number(vm[1]))].filter((x): x is string => x !== undefined) : storage ? this.pools.poolsOfStorage(storage[1]!) : [];
    for (const pool of pools) {
      for (const [priv, propagate] of this.walkWithPropagation(subject, `/pool/${pool}`)) out.set(priv, (out.get(priv) ?? false) || propagate);
    }
    return out;
  }

  /** `walk`, keeping for each privilege whether the ACL that grants it propagates. */
  private walkWithPropagation(subject: string, path: string): Map<string, boolean> {
    const bySubject = this.index.get(subject);
    let acls: AclSeed[] = [];
    for (const level of bySubject ? prefixes(path) : []) {
      const exact = level === path;
      const here = (bySubject!.get(level) ?? []).filter((a) => exact || a.propagate !== false);
      if (here.length) acls = here;
    }
    const out = new Map<string, boolean>();
    for (const acl of acls) {
      for (const priv of this.roles[acl.role] ?? []) out.set(priv, (out.get(priv) ?? false) || acl.propagate !== false);
    }
    return out;
  }

  private reindex(): void {
    this.index = new Map();
    this.vmMemo = new Map();
    for (const a of this.acls) {
      const bySubject = this.index.get(a.subject) ?? new Map<string, AclSeed[]>();
      bySubject.set(a.path, [...(bySubject.get(a.path) ?? []), a]);
      this.index.set(a.subject, bySubject);
    }
  }

  /** Removes the ACLs on a path (PVE does this for `/vms/<id>` when the VM is destroyed). */
  removePath(path: string): void {
    const p = normalizePath(path);
    for (let i = this.acls.length - 1; i >= 0; i--) if (this.acls[i]!.path === p) this.acls.splice(i, 1);
    this.reindex();
  }

  privileges(identity: Identity, path: string): ReadonlySet<string> {
    // root@pam, and its tokens without privilege separation, have every privilege everywhere.
    if (identity.userid === 'root@pam' && (!identity.tokenName || !identity.privsep)) return ALL_PRIVILEGES;
    const user = this.subjectPrivileges(identity.userid, path);
    if (!identity.tokenName) return user;
    if (!identity.privsep) return user;
    const token = this.subjectPrivileges(authId(identity), path);
    const cached = this.intersections.get(token)?.get(user);
    if (cached) return cached;
    const both = new Set<string>();
    for (const p of token) if (user.has(p)) both.add(p);
    // Memoized by the two (memoized) sets themselves, so it is as fresh as they are.
    const byUser = this.intersections.get(token) ?? new WeakMap<Set<string>, Set<string>>();
    byUser.set(user, both);
    this.intersections.set(token, byUser);
    return both;
  }

  has(identity: Identity, path: string, privs: readonly string[], any = false): boolean {
    const granted = this.privileges(identity, path);
    return any ? privs.some((p) => granted.has(p)) : privs.every((p) => granted.has(p));
  }

  /** A simple `perm` check: 403 naming the path and privileges when it fails. */
  check(identity: Identity, path: string, privs: readonly string[], any = false): void {
    if (!this.has(identity, path, privs, any)) throw permissionError(`${path}, ${privs.join(any ? '|' : ', ')}`);
  }

  private subjectPrivileges(subject: string, path: string): Set<string> {
    // Pool membership of storages is fixed by the seed, so only VM paths need the pool in their memo key.
    const vmOnly = /^\/vms\/(\d+)$/.exec(path);
    const key = vmOnly && !this.index.get(subject)?.has(path) ? `${subject}|/vms/*|${this.pools.poolOfVm(Number(vmOnly[1])) ?? ''}` : vmOnly ? undefined : `${subject}|${path}`;
    if (key === undefined) return this.computePrivileges(subject, path);
    let memo = this.vmMemo.get(key);
    if (!memo) this.vmMemo.set(key, (memo = this.computePrivileges(subject, path)));
    return memo;
  }

  private computePrivileges(subject: string, path: string): Set<string> {
    const privs = new Set(this.walk(subject, path));
    const vm = /^\/vms\/(\d+)$/.exec(path);
    const storage = /^\/storage\/([^/]+)$/.exec(path);
    const pools = vm ? [this.pools.poolOfVm(Number(vm[1]))].filter((p): p is string => p !== undefined) : storage ? this.pools.poolsOfStorage(storage[1]!) : [];
    for (const pool of pools) for (const p of this.walk(subject, `/pool/${pool}`)) privs.add(p);
    return privs;
  }

  /** The roles of the most specific ACL level on the way from `/` to `path` that names the subject. */
  private walk(subject: string, path: string): string[] {
    const bySubject = this.index.get(subject);
    if (!bySubject) return [];
    let roles: string[] = [];
    for (const level of prefixes(path)) {
      const exact = level === path;
      const here = (bySubject.get(level) ?? []).filter((a) => exact || a.propagate !== false);
      if (here.length) roles = here.map((a) => a.role);
    }
    return roles.flatMap((r) => this.roles[r] ?? []);
  }
}

function intersect(a: Map<string, boolean>, b: Map<string, boolean>): Map<string, boolean> {
  const both = new Map<string, boolean>();
  for (const [priv, propagate] of a) if (b.has(priv)) both.set(priv, propagate && b.get(priv)!);
  return both;
}

export function normalizePath(path: string): string {
  const p = `/${path.split('/').filter(Boolean).join('/')}`;
  return p;
}

function prefixes(path: string): string[] {
  const parts = path.split('/').filter(Boolean);
  return ['/', ...parts.map((_, i) => `/${parts.slice(0, i + 1).join('/')}`)];
}
