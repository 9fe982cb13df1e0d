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
    status: u.isBlocked ? ('blocked' as const) : u.invited ? ('invited' as const) : ('active' as const),
    last_login: u.lastLogin,
    auto_groups: [...u.autoGroups],
    is_current: u.id === ctx.currentUserId,
    is_service_user: u.isServiceUser ?? false,
    is_blocked: u.isBlocked,
    pending_approval: false,
    issued: 'api',
  };
}

/** NetBird's permission modules (`permissions/modules`), each with read/create/update/delete. */
const PERMISSION_MODULES = [
  'networks',
  'peers',
  'remote_jobs',
  'groups',
  'settings',
  'accounts',
  'dns',
  'nameservers',
  'events',
  'policies',
  'routes',
  'users',
  'setup_keys',
  'pats',
  'identity_providers',
  'services',
  'agent_network',
  'agent_network.providers',
  'agent_network.policies',
  'agent_network.guardrails',
  'agent_network.budgets',
  'agent_network.usage',
  'agent_network.logs',
  'agent_network.settings',
];

/**
 * `GET /api/users/current`: the user plus what their role may do (`GetPermissionsByRole`). Owners may do all;
 * admins all but change accounts; everyone else (user, auditor, ...) is shown as a restricted regular user.
 */
export function currentUserView(ctx: ViewContext, u: UserRecord) {
  const all = u.role === 'owner' || u.role === 'admin';
  const modules = Object.fromEntries(
    PERMISSION_MODULES.map((m) => {
      const allowed = all && !(u.role === 'admin' && m === 'accounts');
      return [m, { read: all, create: allowed, update: allowed, delete: allowed }];
    }),
  );
  return { ...userView(ctx, u), permissions: { is_restricted: !all, modules } };
}

/** `GET /api/accounts`: the one account the token's user belongs to, with a new account's default settings. */
export function accountView(ctx: ViewContext) {
  const a = ctx.account;
  const owner = a.users.get(a.createdBy);
  return {
    id: a.id,
    settings: {
      peer_login_expiration_enabled: true,
      peer_login_expiration: 86_400,
      peer_inactivity_expiration_enabled: false,
      peer_inactivity_expiration: 600,
      regular_users_view_blocked: true,
      groups_propagation_enabled: a.groupsPropagationEnabled,
      jwt_groups_enabled: false,
      jwt_groups_claim_name: '',
      jwt_allow_groups: [] as string[],
      routing_peer_dns_resolution_enabled: true,
      dns_domain: ctx.dnsDomain,
      network_range: a.peerNetwork,
      peer_expose_enabled: false,
      peer_expose_groups: [] as string[],
      lazy_connection_enabled: false,
      auto_update_version: 'disabled',
      auto_update_always: false,
      embedded_idp_enabled: false,
      local_auth_disabled: false,
    },
    domain: owner?.email.split('@')[1] ?? '',
    domain_category: 'private',
    created_at: a.createdAt,
    created_by: a.createdBy,
    onboarding: { signup_form_pending: false, onboarding_flow_pending: false },
  };
}

/** One entry of `GET /api/peers/{id}/accessible-peers` (NetBird's `peerToAccessiblePeer`). */
export function accessiblePeerView(ctx: ViewContext, p: PeerRecord) {
  return {
    id: p.id,
    name: p.name,
    ip: p.ip,
    dns_label: `${p.dnsLabel}.${ctx.dnsDomain}`,
    user_id: p.userId,
    os: 'Linux',
    country_code: '',
    city_name: '',
    geoname_id: 0,
    connected: true,
    last_seen: p.lastSeen,
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
      // NetBird's encoder writes a rule without groups as null.
      sources: r.sources.length ? groups(r.sources) : null,
      destinations: r.destinations.length ? groups(r.destinations) : null,
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
