import { randomBytes, randomUUID } from 'node:crypto';
import { alreadyExists, badRequest, invalidArgument, NetbirdEnrollmentError, NetbirdStatusError, notFound } from './errors';
import { maskSetupKey, newSetupKeySecret, xidLike } from './ids';
import { PeerAddressPool } from './ipam';

/**
 * One NetBird account: its users, peers, groups, policies and setup keys, with the rules the management server
 * enforces on them. Group membership is held by the groups alone (a peer's groups are derived), so `peers` and
 * `peers_count` can never disagree with a peer's `groups`.
 */

export const ALL_GROUP_NAME = 'All';
/** A new account's policy (`Account.AddAllGroup`): All to All, both ways. The rule shares the policy's id and texts. */
export const DEFAULT_POLICY_NAME = 'Default';
const DEFAULT_RULE_DESCRIPTION = 'This is a default rule that allows connections between all the resources';
export const USER_ROLES = ['owner', 'admin', 'user', 'billing_admin', 'auditor', 'network_admin'] as const;
/** NetBird reports "never used" as Go's zero time. */
export const ZERO_TIME = '0001-01-01T00:00:00Z';

export interface UserRecord {
  id: string;
  email: string;
  name: string;
  role: string;
  autoGroups: string[];
  isBlocked: boolean;
  lastLogin: string;
  /** A service user (created through the API, for automation): no email, no login, never `invited`. */
  isServiceUser?: boolean;
  /** Invited through the API and not logged in yet. */
  invited?: boolean;
}

export interface PeerRecord {
  id: string;
  name: string;
  hostname: string;
  ip: string;
  /** The label only; the API shows it with the account's DNS domain appended. */
  dnsLabel: string;
  /** The setup key it registered with; empty for a peer a user registered by logging in. */
  setupKeyId: string;
  /** The user who registered it by logging in (SSO); empty for a setup-key peer. */
  userId: string;
  ephemeral: boolean;
  sshEnabled: boolean;
  loginExpirationEnabled: boolean;
  inactivityExpirationEnabled: boolean;
  approvalRequired: boolean;
  createdAt: string;
  lastSeen: string;
}

export interface GroupRecord {
  id: string;
  name: string;
  peers: string[];
  issued: 'api' | 'integration' | 'jwt';
}

export interface PolicyRuleRecord {
  id: string;
  name: string;
  description?: string;
  enabled: boolean;
  action: 'accept' | 'drop';
  bidirectional: boolean;
  protocol: 'all' | 'tcp' | 'udp' | 'icmp' | 'netbird-ssh';
  ports?: string[];
  portRanges?: Array<{ start: number; end: number }>;
  sources: string[];
  destinations: string[];
}

export interface PolicyRecord {
  id: string;
  name: string;
  description?: string;
  enabled: boolean;
  sourcePostureChecks: string[];
  rules: PolicyRuleRecord[];
}

export interface SetupKeyRecord {
  id: string;
  /** Kept to recognise the key at enrollment; never shown again after creation. */
  secret: string;
  name: string;
  type: 'one-off' | 'reusable';
  expiresAt: string;
  revoked: boolean;
  usedTimes: number;
  lastUsed: string;
  autoGroups: string[];
  updatedAt: string;
  usageLimit: number;
  ephemeral: boolean;
  allowExtraDnsLabels: boolean;
}

/** The parts of the spec's request bodies the account acts on; the server has validated them against the spec. */
export interface GroupInput {
  name: string;
  peers?: string[];
}
export interface PolicyRuleInput {
  id?: string;
  name: string;
  description?: string;
  enabled: boolean;
  action: PolicyRuleRecord['action'];
  bidirectional: boolean;
  protocol: PolicyRuleRecord['protocol'];
  ports?: string[];
  port_ranges?: Array<{ start: number; end: number }>;
  sources?: string[];
  destinations?: string[];
}
export interface PolicyInput {
  name: string;
  description?: string;
  enabled: boolean;
  source_posture_checks?: string[];
  rules: PolicyRuleInput[];
}
export interface SetupKeyInput {
  name: string;
  type: string;
  expires_in: number;
  auto_groups: string[];
  usage_limit: number;
  ephemeral?: boolean;
  allow_extra_dns_labels?: boolean;
}
export interface PeerInput {
  name: string;
  ssh_enabled: boolean;
  login_expiration_enabled: boolean;
  inactivity_expiration_enabled: boolean;
  approval_required?: boolean;
  ip?: string;
}
export interface UserInput {
  role: string;
  auto_groups: string[];
  is_blocked: boolean;
}
export interface UserCreateInput {
  email?: string;
  name?: string;
  role: string;
  auto_groups: string[];
  is_service_user: boolean;
}

export interface AccountOptions {
  users: Array<{ email: string; name: string; role?: 'owner' | 'admin' | 'user' }>;
  peerNetwork: string;
  /**
   * The account setting `groups_propagation_enabled`: a change to a user's auto_groups is applied to the peers that
   * user already registered (groups added join them, groups removed leave them). Without it, auto_groups only apply
   * to peers the user registers later. Default true.
   */
  groupsPropagation?: boolean;
  now?: () => Date;
  /** The account as an earlier run left it (`snapshot()`), in place of `users` and a fresh `All` group. */
  restore?: NetbirdAccountSnapshot;
  /**
   * Whether a new account gets NetBird's `Default` policy (every peer reaches every peer, both ways), as the real
   * server's accounts do unless it runs with `--disable-default-policy`. Default true.
   */
  defaultPolicy?: boolean;
}

/**
 * What of an account outlives the simulator's process, as plain JSON: every record as the account holds it (setup
 * keys with their secret, so that a VM still booting can enroll after a restart). A new kind of record joins here.
 */
export interface NetbirdAccountSnapshot {
  allGroupId: string;
  users: UserRecord[];
  peers: PeerRecord[];
  groups: GroupRecord[];
  policies: PolicyRecord[];
  setupKeys: SetupKeyRecord[];
  /** The account's own id and origin (absent in a snapshot of an older simulator: made anew). */
  account?: { id: string; createdAt: string; createdBy: string };
}

export class NetbirdAccount {
  readonly users = new Map<string, UserRecord>();
  readonly peers = new Map<string, PeerRecord>();
  readonly groups = new Map<string, GroupRecord>();
  readonly policies = new Map<string, PolicyRecord>();
  readonly setupKeys = new Map<string, SetupKeyRecord>();
  readonly allGroupId: string;
  /** The account's own id and when and by whom it was made (`GET /api/accounts`). */
  readonly id: string;
  readonly createdAt: string;
  readonly createdBy: string;
  readonly peerNetwork: string;
  private readonly addresses: PeerAddressPool;
  private readonly labels = new Set<string>();
  private readonly now: () => Date;
  private readonly groupsPropagation: boolean;

  constructor(opts: AccountOptions) {
    this.now = opts.now ?? (() => new Date());
    this.groupsPropagation = opts.groupsPropagation ?? true;
    this.peerNetwork = opts.peerNetwork;
    this.addresses = new PeerAddressPool(opts.peerNetwork);
    if (opts.restore) {
      this.allGroupId = opts.restore.allGroupId;
      this.load(opts.restore);
      this.id = opts.restore.account?.id ?? xidLike();
      this.createdAt = opts.restore.account?.createdAt ?? this.stamp();
      this.createdBy = opts.restore.account?.createdBy ?? [...this.users.values()].find((u) => u.role === 'owner')?.id ?? '';
      return;
    }
    this.id = xidLike();
    this.allGroupId = xidLike();
    this.groups.set(this.allGroupId, { id: this.allGroupId, name: ALL_GROUP_NAME, peers: [], issued: 'api' });
    if (opts.defaultPolicy ?? true) {
      const id = xidLike();
      const rule = { id, name: DEFAULT_POLICY_NAME, description: DEFAULT_RULE_DESCRIPTION, enabled: true, action: 'accept', bidirectional: true, protocol: 'all' } as const;
      this.policies.set(id, {
        id,
        name: DEFAULT_POLICY_NAME,
        description: DEFAULT_RULE_DESCRIPTION,
        enabled: true,
        sourcePostureChecks: [],
        rules: [{ ...rule, sources: [this.allGroupId], destinations: [this.allGroupId] }],
      });
    }
    opts.users.forEach((u, i) => {
      const id = xidLike();
      const role = u.role ?? (i === 0 ? 'owner' : 'user');
      this.users.set(id, { id, email: u.email, name: u.name, role, autoGroups: [], isBlocked: false, lastLogin: this.stamp() });
    });
    this.createdAt = this.stamp();
    this.createdBy = [...this.users.values()].find((u) => u.role === 'owner')?.id ?? '';
  }

  get groupsPropagationEnabled(): boolean {
    return this.groupsPropagation;
  }

  snapshot(): NetbirdAccountSnapshot {
    return structuredClone({
      allGroupId: this.allGroupId,
      users: [...this.users.values()],
      peers: [...this.peers.values()],
      groups: [...this.groups.values()],
      policies: [...this.policies.values()],
      setupKeys: [...this.setupKeys.values()],
      account: { id: this.id, createdAt: this.createdAt, createdBy: this.createdBy },
    });
  }

  private load(snapshot: NetbirdAccountSnapshot): void {
    const copy = structuredClone(snapshot);
    for (const u of copy.users) this.users.set(u.id, u);
    for (const g of copy.groups) this.groups.set(g.id, g);
    for (const p of copy.policies) this.policies.set(p.id, p);
    for (const k of copy.setupKeys) this.setupKeys.set(k.id, k);
    for (const p of copy.peers) {
      this.peers.set(p.id, p);
      if (this.addresses.contains(p.ip)) this.addresses.claim(p.ip);
      this.labels.add(p.dnsLabel);
    }
    if (!this.groups.has(this.allGroupId)) {
      this.groups.set(this.allGroupId, { id: this.allGroupId, name: ALL_GROUP_NAME, peers: [...this.peers.keys()], issued: 'api' });
    }
  }

  private stamp(): string {
    return this.now().toISOString();
  }

  // ---- users -------------------------------------------------------------------------------------------------

  /**
   * `POST /api/users` (NetBird's createUser → createServiceUser / inviteNewUser): a service user gets a UUID and is
   * active at once; anyone else is made in the identity provider (name and email required, never as owner, never an
   * email already in the account). With the built-in IdP (Dex) of v0.77.1, as NetBird's own server runs here: the
   * user is `active` at once, its id is Dex's encoded id, and the answer alone carries the password Dex generated
   * (`password`, never shown again). Auto groups are stored as given, as NetBird does.
   */
  createUser(input: UserCreateInput): { user: UserRecord; password?: string } {
    if (!(USER_ROLES as readonly string[]).includes(input.role)) throw invalidArgument(`unknown user role ${input.role}`);
    const common = { role: input.role, autoGroups: [...new Set(input.auto_groups)], isBlocked: false, lastLogin: ZERO_TIME };
    if (input.is_service_user) {
      if (input.role === 'owner') throw invalidArgument("can't create a service user with owner role");
      const user: UserRecord = { id: randomUUID(), email: '', name: input.name ?? '', isServiceUser: true, ...common };
      this.users.set(user.id, user);
      return { user };
    }
    if (!input.name) throw invalidArgument("name can't be empty");
    if (!input.email) throw invalidArgument("email can't be empty");
    if (input.role === 'owner') throw invalidArgument("can't invite a user with owner role");
    const email = input.email;
    if ([...this.users.values()].some((u) => u.email.toLowerCase() === email.toLowerCase())) {
      throw alreadyExists("can't invite a user with an existing netbird account");
    }
    const user: UserRecord = { id: dexUserId(randomUUID()), email, name: input.name, ...common };
    this.users.set(user.id, user);
    return { user, password: dexPassword() };
  }

  /** NetBird's DeleteUser: never oneself, never the owner; the user's peers go with a regular user. */
  deleteUser(initiatorId: string | undefined, userId: string): void {
    if (initiatorId === userId) throw invalidArgument('self deletion is not allowed');
    const user = this.users.get(userId);
    if (!user) throw notFound(`user: ${userId} not found`);
    if (user.role === 'owner') throw new NetbirdStatusError(403, "can't delete a user with the owner role");
    for (const peer of [...this.peers.values()]) if (peer.userId === userId) this.deletePeer(peer.id);
    this.users.delete(userId);
  }

  updateUser(userId: string, input: UserInput): UserRecord {
    const user = this.users.get(userId);
    if (!user) throw notFound(`user: ${userId} not found`);
    if (!(USER_ROLES as readonly string[]).includes(input.role)) throw invalidArgument(`invalid user role: ${input.role}`);
    if (user.role === 'owner' && input.role !== 'owner') {
      throw invalidArgument('the owner role can only be transferred, not removed');
    }
    this.requireGroups(input.auto_groups);
    const before = user.autoGroups;
    const after = [...new Set(input.auto_groups)];
    user.role = input.role;
    user.autoGroups = after;
    user.isBlocked = input.is_blocked;
    if (this.groupsPropagation) this.propagateAutoGroups(user.id, before, after);
    return user;
  }

  /** NetBird's groups propagation: the user's existing peers join the groups added and leave the groups removed. */
  private propagateAutoGroups(userId: string, before: string[], after: string[]): void {
    const own = [...this.peers.values()].filter((p) => p.userId === userId).map((p) => p.id);
    if (!own.length) return;
    for (const groupId of after.filter((g) => !before.includes(g))) {
      const group = this.groups.get(groupId);
      if (group) group.peers = [...new Set([...group.peers, ...own])];
    }
    for (const groupId of before.filter((g) => !after.includes(g))) {
      const group = this.groups.get(groupId);
      if (group) group.peers = group.peers.filter((id) => !own.includes(id));
    }
  }

  // ---- peers -------------------------------------------------------------------------------------------------

  peer(peerId: string): PeerRecord {
    const peer = this.peers.get(peerId);
    if (!peer) throw notFound('peer not found');
    return peer;
  }

  /** NetBird filters by `name LIKE %x%` (its SQL store), so a name filter matches substrings, case-insensitively. */
  listPeers(filter: { name?: string; ip?: string }): PeerRecord[] {
    const name = filter.name?.toLowerCase();
    return [...this.peers.values()].filter((p) => (!name || p.name.toLowerCase().includes(name)) && (!filter.ip || p.ip.includes(filter.ip)));
  }

  groupsOfPeer(peerId: string): GroupRecord[] {
    return [...this.groups.values()].filter((g) => g.peers.includes(peerId));
  }

  /** A VM booted with a setup key: management registers it as a peer, or refuses the key. */
  enroll(secret: string, hostname: string): PeerRecord {
    const key = [...this.setupKeys.values()].find((k) => k.secret === secret);
    if (!key) throw new NetbirdEnrollmentError('unknown', hostname);
    const state = this.setupKeyState(key);
    if (state !== 'valid') throw new NetbirdEnrollmentError(state, hostname);
    key.usedTimes += 1;
    key.lastUsed = this.stamp();
    return this.register({ hostname, setupKeyId: key.id, userId: '', ephemeral: key.ephemeral }, key.autoGroups);
  }

  /**
   * A user's machine joined by logging in (`netbird up` with SSO): the peer belongs to the user and starts in the
   * user's auto_groups, which is how a consultant's laptop gets into their standing group.
   */
  enrollForUser(email: string, hostname: string): PeerRecord {
    const user = [...this.users.values()].find((u) => u.email.toLowerCase() === email.toLowerCase());
    if (!user) throw notFound(`user with email ${email} not found`);
    return this.register({ hostname, setupKeyId: '', userId: user.id, ephemeral: false }, user.autoGroups);
  }

  private register(origin: Pick<PeerRecord, 'hostname' | 'setupKeyId' | 'userId' | 'ephemeral'>, autoGroups: string[]): PeerRecord {
    const now = this.stamp();
    const peer: PeerRecord = {
      ...origin,
      id: xidLike(),
      name: origin.hostname,
      ip: this.addresses.allocate(),
      dnsLabel: this.uniqueLabel(origin.hostname),
      sshEnabled: false,
      loginExpirationEnabled: false,
      inactivityExpirationEnabled: false,
      approvalRequired: false,
      createdAt: now,
      lastSeen: now,
    };
    this.peers.set(peer.id, peer);
    for (const groupId of [this.allGroupId, ...autoGroups]) this.groups.get(groupId)?.peers.push(peer.id);
    return peer;
  }

  /**
   * The peers `peerId` may open connections to under the enabled accept rules: a rule lets its sources reach its
   * destinations, and the destinations reach the sources only when it is bidirectional. What NetBird distributes as
   * each peer's network map, reduced to who-may-reach-whom.
   */
  /**
   * The peers in `peerId`'s network map, which is what `GET /api/peers/{id}/accessible-peers` lists: every peer that
   * shares an enabled rule of an enabled policy with it, on either side and whatever the rule's direction or action
   * (the direction only shapes the firewall rules; NetBird's `GetPeerNetworkMapFromComponents`). An unknown peer
   * has an empty map.
   */
  networkMapPeers(peerId: string): string[] {
    if (!this.peers.has(peerId)) return [];
    const found = new Set<string>();
    const members = (groupIds: string[]) => groupIds.flatMap((id) => this.groups.get(id)?.peers ?? []);
    for (const policy of this.policies.values()) {
      if (!policy.enabled) continue;
      for (const rule of policy.rules) {
        if (!rule.enabled) continue;
        const sources = members(rule.sources);
        const destinations = members(rule.destinations);
        if (sources.includes(peerId)) destinations.forEach((id) => found.add(id));
        if (destinations.includes(peerId)) sources.forEach((id) => found.add(id));
      }
    }
    found.delete(peerId);
    return [...found].filter((id) => this.peers.has(id));
  }

  reachableFrom(peerId: string): Set<string> {
    const reachable = new Set<string>();
    const members = (groupIds: string[]) => groupIds.flatMap((id) => this.groups.get(id)?.peers ?? []);
    for (const policy of this.policies.values()) {
      if (!policy.enabled) continue;
      for (const rule of policy.rules) {
        if (!rule.enabled || rule.action !== 'accept') continue;
        const sources = members(rule.sources);
        const destinations = members(rule.destinations);
        if (sources.includes(peerId)) destinations.forEach((id) => reachable.add(id));
        if (rule.bidirectional && destinations.includes(peerId)) sources.forEach((id) => reachable.add(id));
      }
    }
    reachable.delete(peerId);
    return reachable;
  }

  updatePeer(peerId: string, input: PeerInput): PeerRecord {
    const peer = this.peer(peerId);
    if (input.ip !== undefined && input.ip !== peer.ip) {
      if (!this.addresses.contains(input.ip)) throw invalidArgument(`IP ${input.ip} is not within the account network`);
      if (this.addresses.isTaken(input.ip)) throw invalidArgument(`IP ${input.ip} is already assigned to a peer`);
      this.addresses.release(peer.ip);
      this.addresses.claim(input.ip);
      peer.ip = input.ip;
    }
    if (input.name !== peer.name) {
      this.labels.delete(peer.dnsLabel);
      peer.dnsLabel = this.uniqueLabel(input.name);
      peer.name = input.name;
    }
    peer.sshEnabled = input.ssh_enabled;
    peer.loginExpirationEnabled = input.login_expiration_enabled;
    peer.inactivityExpirationEnabled = input.inactivity_expiration_enabled;
    if (input.approval_required !== undefined) peer.approvalRequired = input.approval_required;
    return peer;
  }

  /** Removes the peer from every group; the groups themselves stay. */
  deletePeer(peerId: string): void {
    const peer = this.peer(peerId);
    for (const group of this.groups.values()) group.peers = group.peers.filter((id) => id !== peerId);
    this.addresses.release(peer.ip);
    this.labels.delete(peer.dnsLabel);
    this.peers.delete(peerId);
  }

  private uniqueLabel(name: string): string {
    const base =
      name
        .toLowerCase()
        .replace(/[^a-z0-9-]+/g, '-')
        .replace(/^-+|-+$/g, '')
        .slice(0, 63) || 'peer';
    let label = base;
    for (let n = 1; this.labels.has(label); n++) label = `${base.slice(0, 60)}-${n}`;
    this.labels.add(label);
    return label;
  }

  // ---- groups ------------------------------------------------------------------------------------------------

  group(groupId: string): GroupRecord {
    const group = this.groups.get(groupId);
    if (!group) throw notFound(`group: ${groupId} not found`);
    return group;
  }

  createGroup(input: GroupInput): GroupRecord {
    if (!input.name) throw invalidArgument("group name shouldn't be empty");
    if ([...this.groups.values()].some((g) => g.name === input.name && g.issued === 'api')) {
      throw alreadyExists(`group with name ${input.name} already exists`);
    }
    const group: GroupRecord = { id: xidLike(), name: input.name, peers: this.existingPeers(input.peers), issued: 'api' };
    this.groups.set(group.id, group);
    return group;
  }

  updateGroup(groupId: string, input: GroupInput): GroupRecord {
    const group = this.group(groupId);
    if (groupId === this.allGroupId) throw invalidArgument('updating group ALL is not allowed');
    if (!input.name) throw invalidArgument("group name shouldn't be empty");
    group.peers = this.existingPeers(input.peers);
    group.name = input.name;
    return group;
  }

  /** Refused (as NetBird does, with 400) while a policy, a setup key or a user still refers to the group. */
  deleteGroup(groupId: string): void {
    const group = this.group(groupId);
    if (groupId === this.allGroupId) throw linkError('deleting group ALL is not allowed');
    const policy = [...this.policies.values()].find((p) => p.rules.some((r) => r.sources.includes(groupId) || r.destinations.includes(groupId)));
    if (policy) throw linkError(`group has been linked to policy: ${policy.name}`);
    const key = [...this.setupKeys.values()].find((k) => k.autoGroups.includes(groupId));
    if (key) throw linkError(`group has been linked to setup key: ${key.name}`);
    const user = [...this.users.values()].find((u) => u.autoGroups.includes(groupId));
    if (user) throw linkError(`group has been linked to user: ${user.id}`);
    this.groups.delete(group.id);
  }

  private existingPeers(ids: string[] | undefined): string[] {
    for (const id of ids ?? []) if (!this.peers.has(id)) throw invalidArgument(`peer with ID "${id}" not found`);
    return [...new Set(ids ?? [])];
  }

  private requireGroups(ids: string[]): void {
    for (const id of ids) if (!this.groups.has(id)) throw invalidArgument(`group ${id} doesn't exist`);
  }

  // ---- policies ----------------------------------------------------------------------------------------------

  policy(policyId: string): PolicyRecord {
    const policy = this.policies.get(policyId);
    if (!policy) throw notFound(`policy: ${policyId} not found`);
    return policy;
  }

  createPolicy(input: PolicyInput): PolicyRecord {
    const policy: PolicyRecord = { id: xidLike(), ...this.policyFields(input, []) };
    this.policies.set(policy.id, policy);
    return policy;
  }

  updatePolicy(policyId: string, input: PolicyInput): PolicyRecord {
    const policy = this.policy(policyId);
    Object.assign(policy, this.policyFields(input, policy.rules));
    return policy;
  }

  deletePolicy(policyId: string): void {
    this.policy(policyId);
    this.policies.delete(policyId);
  }

  private policyFields(input: PolicyInput, oldRules: PolicyRuleRecord[]): Omit<PolicyRecord, 'id'> {
    if (!input.name) throw invalidArgument("policy name shouldn't be empty");
    const rules = input.rules.map((rule): PolicyRuleRecord => {
      if (rule.ports?.length && rule.port_ranges?.length) {
        throw invalidArgument('policy rule accepts either ports or port_ranges, not both');
      }
      if ((rule.protocol === 'all' || rule.protocol === 'icmp') && (rule.ports?.length || rule.port_ranges?.length)) {
        throw invalidArgument('for all or icmp protocol ports is not allowed');
      }
      for (const port of rule.ports ?? []) {
        const n = Number(port);
        if (!/^\d+$/.test(port) || n < 1 || n > 65535) throw invalidArgument('valid port value is in 1..65535 range');
      }
      for (const range of rule.port_ranges ?? []) {
        if (range.start < 1 || range.end > 65535 || range.start > range.end) {
          throw invalidArgument('valid port range is in 1..65535 with start <= end');
        }
      }
      const known = (ids: string[]) => ids.filter((id) => this.groups.has(id));
      return {
        id: rule.id && oldRules.some((r) => r.id === rule.id) ? rule.id : xidLike(),
        name: rule.name,
        ...(rule.description !== undefined && { description: rule.description }),
        enabled: rule.enabled,
        action: rule.action,
        bidirectional: rule.bidirectional,
        protocol: rule.protocol,
        ...(rule.ports?.length && { ports: [...rule.ports] }),
        ...(rule.port_ranges?.length && { portRanges: rule.port_ranges.map((r) => ({ ...r })) }),
        // NetBird keeps only the group ids that exist (getValidGroupIDs): unknown ones vanish without an error.
        // A rule left without groups is kept: v0.77.1 accepts it and it applies to nobody.
        sources: known(rule.sources ?? []),
        destinations: known(rule.destinations ?? []),
      };
    });
    return {
      name: input.name,
      ...(input.description !== undefined && { description: input.description }),
      enabled: input.enabled,
      sourcePostureChecks: [...(input.source_posture_checks ?? [])],
      rules,
    };
  }

  // ---- setup keys --------------------------------------------------------------------------------------------

  setupKey(keyId: string): SetupKeyRecord {
    const key = this.setupKeys.get(keyId);
    if (!key) throw notFound(`setup key: ${keyId} not found`);
    return key;
  }

  setupKeyState(key: SetupKeyRecord): 'valid' | EnrollmentRefusalState {
    if (Date.parse(key.expiresAt) <= this.now().getTime()) return 'expired';
    if (key.revoked) return 'revoked';
    const limit = key.type === 'one-off' ? 1 : key.usageLimit;
    if (limit > 0 && key.usedTimes >= limit) return 'overused';
    return 'valid';
  }

  createSetupKey(input: SetupKeyInput): SetupKeyRecord {
    if (!input.name) throw invalidArgument("setup key name shouldn't be empty");
    if (input.type !== 'one-off' && input.type !== 'reusable') throw invalidArgument(`unknown setup key type ${input.type}`);
    // v0.77.1's handler: a one-off key is used once; asking it for more is refused rather than silently pinned to 1
    // (0 still passes: the field is required, so 0 cannot be told from "nothing to say").
    if (input.type === 'one-off' && input.usage_limit > 1) {
      throw invalidArgument(`usage_limit ${input.usage_limit} is not valid for a one-off setup key, which can be used once; use type reusable for a key that can be used more than once`);
    }
    if (input.expires_in < 0) throw invalidArgument('expiresIn can not be in the past');
    this.checkKeyGroups(input.auto_groups);
    const now = this.now();
    const key: SetupKeyRecord = {
      id: xidLike(),
      secret: newSetupKeySecret(),
      name: input.name,
      type: input.type,
      expiresAt: new Date(now.getTime() + input.expires_in * 1000).toISOString(),
      revoked: false,
      usedTimes: 0,
      lastUsed: ZERO_TIME,
      autoGroups: [...new Set(input.auto_groups)],
      updatedAt: now.toISOString(),
      usageLimit: input.type === 'one-off' ? 1 : input.usage_limit,
      ephemeral: input.ephemeral ?? false,
      allowExtraDnsLabels: input.allow_extra_dns_labels ?? false,
    };
    this.setupKeys.set(key.id, key);
    return key;
  }

  updateSetupKey(keyId: string, input: { revoked: boolean; auto_groups: string[] }): SetupKeyRecord {
    // NetBird checks the groups before it loads the key.
    this.checkKeyGroups(input.auto_groups);
    const key = this.setupKey(keyId);
    if (key.revoked && !input.revoked) throw invalidArgument("can't un-revoke a revoked setup key");
    key.revoked = input.revoked;
    key.autoGroups = [...new Set(input.auto_groups)];
    key.updatedAt = this.stamp();
    return key;
  }

  deleteSetupKey(keyId: string): void {
    this.setupKey(keyId);
    this.setupKeys.delete(keyId);
  }

  maskedKey(key: SetupKeyRecord): string {
    return maskSetupKey(key.secret);
  }

  /** `validateSetupKeyAutoGroups`, wrapped as InvalidArgument and lower-cased by `util.WriteError`. */
  private checkKeyGroups(ids: string[]): void {
    for (const id of ids) {
      if (!this.groups.has(id)) throw invalidArgument(`invalid auto groups: group not found: ${id}`.toLowerCase());
      if (id === this.allGroupId) throw invalidArgument("invalid auto groups: can't add 'all' group to the setup key");
    }
  }
}

/** Dex's user id as NetBird stores it: base64 of the protobuf {1: user uuid, 2: connector id `local`}. */
function dexUserId(uuid: string): string {
  return Buffer.concat([Buffer.from([0x0a, uuid.length]), Buffer.from(uuid), Buffer.from([0x12, 5]), Buffer.from('local')]).toString('base64');
}

/** `GeneratePassword(16, 2, 2, 2)`: 16 characters with at least two digits, two specials and two upper-case letters. */
function dexPassword(): string {
  const pick = (set: string, n: number) => Array.from(randomBytes(n), (b) => set[b % set.length]!);
  const chars = [...pick('0123456789', 2), ...pick('!@#$%&*', 2), ...pick('ABCDEFGHIJKLMNOPQRSTUVWXYZ', 2), ...pick('abcdefghijklmnopqrstuvwxyz0123456789', 10)];
  return chars.sort(() => randomBytes(1)[0]! - 128).join('');
}

type EnrollmentRefusalState = 'expired' | 'revoked' | 'overused';

/** NetBird's groups handler answers a group it may not delete with 400 and the link error's own text. */
function linkError(message: string) {
  return badRequest(message);
}
