import type { GroupRecord, NetbirdAccount, PeerRecord, PolicyRecord, SetupKeyRecord, UserRecord } from './account';

/**
 * The account's records as the NetBird API shows them (the spec's User, Peer/PeerBatch, Group, Policy, SetupKey
 * schemas). Fields a simulated VM has no real value for get the neutral value NetBird itself reports for them.
 */

export interface ViewContext {
  account: NetbirdAccount;
  dnsDomain: string;
  /** The user the request's token belongs to (`is_current`). */
  currentUserId?: string;
}

const SIMULATED_AGENT_VERSION = '0.77.1';

export function userView(ctx: ViewContext, u: UserRecord) {
  return {
    id: u.id,
    email: u.email,
    name: u.name,
    role: u.role,
    status: u.isBlocked ? ('blocked' as const) : ('active' as const),
    last_login: u.lastLogin,
    auto_groups: [...u.autoGroups],
    is_current: u.id === ctx.currentUserId,
    is_service_user: false,
    is_blocked: u.isBlocked,
    pending_approval: false,
    issued: 'api',
  };
}

export function groupMinimumView(ctx: ViewContext, g: GroupRecord) {
  return { id: g.id, name: g.name, peers_count: g.peers.length, resources_count: 0, issued: g.issued };
}

export function groupView(ctx: ViewContext, g: GroupRecord) {
  const peers = g.peers.flatMap((id) => {
    const p = ctx.account.peers.get(id);
    return p ? [{ id: p.id, name: p.name }] : [];
  });
  return { ...groupMinimumView(ctx, g), peers_count: peers.length, peers, resources: [] as never[] };
}

export function peerView(ctx: ViewContext, p: PeerRecord) {
  return {
    id: p.id,
    name: p.name,
    created_at: p.createdAt,
    ip: p.ip,
    connection_ip: '',
    connected: true,
    last_seen: p.lastSeen,
    os: 'Linux',
    kernel_version: '',
    geoname_id: 0,
    version: SIMULATED_AGENT_VERSION,
    groups: ctx.account.groupsOfPeer(p.id).map((g) => groupMinimumView(ctx, g)),
    ssh_enabled: p.sshEnabled,
    // Peers registered with a setup key belong to no user.
    user_id: p.userId,
    hostname: p.hostname,
    ui_version: '',
    dns_label: `${p.dnsLabel}.${ctx.dnsDomain}`,
    login_expiration_enabled: p.loginExpirationEnabled,
    login_expired: false,
    last_login: p.createdAt,
    inactivity_expiration_enabled: p.inactivityExpirationEnabled,
    approval_required: p.approvalRequired,
    country_code: '',
    city_name: '',
    serial_number: '',
    extra_dns_labels: [] as string[],
    ephemeral: p.ephemeral,
  };
}

/** The list endpoint's PeerBatch adds how many peers this one may reach under the enabled policies. */
export function peerBatchView(ctx: ViewContext, p: PeerRecord) {
  return { ...peerView(ctx, p), accessible_peers_count: ctx.account.reachableFrom(p.id).size };
}

export function policyView(ctx: ViewContext, p: PolicyRecord) {
  const groups = (ids: string[]) =>
    ids.flatMap((id) => {
      const g = ctx.account.groups.get(id);
      return g ? [groupMinimumView(ctx, g)] : [];
    });
  return {
    id: p.id,
    name: p.name,
    ...(p.description !== undefined && { description: p.description }),
    enabled: p.enabled,
    source_posture_checks: [...p.sourcePostureChecks],
    rules: p.rules.map((r) => ({
      id: r.id,
      name: r.name,
      ...(r.description !== undefined && { description: r.description }),
      enabled: r.enabled,
      action: r.action,
      bidirectional: r.bidirectional,
      protocol: r.protocol,
      ...(r.ports && { ports: [...r.ports] }),
      ...(r.portRanges && { port_ranges: r.portRanges.map((x) => ({ ...x })) }),
      sources: groups(r.sources),
      destinations: groups(r.destinations),
    })),
  };
}

/** The masked form every read shows; only the create response carries the key in clear. */
export function setupKeyView(ctx: ViewContext, k: SetupKeyRecord) {
  const state = ctx.account.setupKeyState(k);
  return {
    id: k.id,
    key: ctx.account.maskedKey(k),
    name: k.name,
    expires: k.expiresAt,
    type: k.type,
    valid: state === 'valid',
    revoked: k.revoked,
    used_times: k.usedTimes,
    last_used: k.lastUsed,
    state,
    auto_groups: [...k.autoGroups],
    updated_at: k.updatedAt,
    usage_limit: k.usageLimit,
    ephemeral: k.ephemeral,
    allow_extra_dns_labels: k.allowExtraDnsLabels,
  };
}

export type UserView = ReturnType<typeof userView>;
export type PeerView = ReturnType<typeof peerView>;
export type GroupView = ReturnType<typeof groupView>;
export type PolicyView = ReturnType<typeof policyView>;
export type SetupKeyView = ReturnType<typeof setupKeyView>;
