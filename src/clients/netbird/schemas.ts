import { z } from 'zod';

/**
 * The shapes of NetBird's answers that pveflow relies on: only the fields it uses, the rest passes through
 * untouched (NetBird adds fields between releases; an extra field must never break a build).
 */

const groupMinimum = z.object({ id: z.string(), name: z.string(), peers_count: z.number().int().optional() }).loose();
const peerMinimum = z.object({ id: z.string(), name: z.string() }).loose();

export const userSchema = z
  .object({
    id: z.string(),
    email: z.string(),
    name: z.string(),
    role: z.string(),
    status: z.string(),
    auto_groups: z.array(z.string()),
    is_blocked: z.boolean(),
    is_service_user: z.boolean().optional(),
  })
  .loose();
export type NetbirdUser = z.infer<typeof userSchema>;

export const peerSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    hostname: z.string(),
    ip: z.string(),
    dns_label: z.string(),
    connected: z.boolean(),
    groups: z.array(groupMinimum),
    last_seen: z.string().optional(),
  })
  .loose();
export type NetbirdPeer = z.infer<typeof peerSchema>;

export const groupSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    peers_count: z.number().int(),
    // NetBird's Go encoder writes `null` for a group without peers in some releases.
    peers: z
      .array(peerMinimum)
      .nullish()
      .transform((p) => p ?? []),
    issued: z.string().optional(),
  })
  .loose();
export type NetbirdGroup = z.infer<typeof groupSchema>;

export const policyRuleSchema = z
  .object({
    id: z.string().optional(),
    name: z.string(),
    enabled: z.boolean(),
    action: z.enum(['accept', 'drop']),
    bidirectional: z.boolean(),
    protocol: z.string(),
    ports: z.array(z.string()).nullish(),
    sources: z.array(groupMinimum).nullish(),
    destinations: z.array(groupMinimum).nullish(),
  })
  .loose();

export const policySchema = z
  .object({
    id: z.string(),
    name: z.string(),
    description: z.string().optional(),
    enabled: z.boolean(),
    rules: z.array(policyRuleSchema),
  })
  .loose();
export type NetbirdPolicy = z.infer<typeof policySchema>;

/** `GET /api/accounts`: only what pveflow reads of an account (its settings are many and grow). */
export const accountSchema = z
  .object({
    id: z.string(),
    settings: z.object({ groups_propagation_enabled: z.boolean().optional() }).loose(),
  })
  .loose();
export type NetbirdAccount = z.infer<typeof accountSchema>;

export const setupKeySchema = z
  .object({
    id: z.string(),
    name: z.string(),
    /** Masked (`A6160****`) except in the answer to the create call. */
    key: z.string(),
    type: z.string(),
    expires: z.string(),
    valid: z.boolean(),
    revoked: z.boolean(),
    state: z.string(),
    used_times: z.number().int(),
    usage_limit: z.number().int(),
    auto_groups: z.array(z.string()),
    ephemeral: z.boolean(),
  })
  .loose();
export type NetbirdSetupKey = z.infer<typeof setupKeySchema>;

/** NetBird's error body (`util.WriteErrorResponse`). Absent or unreadable bodies fall back to the status text. */
export const errorBodySchema = z.object({ message: z.string(), code: z.number().optional() }).loose();

// ---- request bodies (the spec's UserRequest, PeerRequest, GroupRequest, PolicyUpdate, CreateSetupKeyRequest) ----

export interface UserUpdate {
  role: string;
  auto_groups: string[];
  is_blocked: boolean;
}

export interface PeerUpdate {
  name: string;
  ssh_enabled: boolean;
  login_expiration_enabled: boolean;
  inactivity_expiration_enabled: boolean;
}

export interface GroupRequest {
  name: string;
  /** Peer ids. PUT replaces the membership with exactly this list. */
  peers?: string[];
}

export interface PolicyRuleRequest {
  id?: string;
  name: string;
  description?: string;
  enabled: boolean;
  action: 'accept' | 'drop';
  bidirectional: boolean;
  protocol: 'all' | 'tcp' | 'udp' | 'icmp' | 'netbird-ssh';
  ports?: string[];
  port_ranges?: Array<{ start: number; end: number }>;
  /** Group ids. NetBird silently drops ids of groups that do not exist. */
  sources: string[];
  destinations: string[];
}

export interface PolicyRequest {
  name: string;
  description?: string;
  enabled: boolean;
  rules: PolicyRuleRequest[];
}

export interface SetupKeyCreate {
  name: string;
  type: 'one-off' | 'reusable';
  /** Seconds; NetBird accepts 86400 (1 day) to 31536000 (1 year). */
  expires_in: number;
  auto_groups: string[];
  /** 0 = unlimited; ignored for one-off keys. */
  usage_limit: number;
  ephemeral?: boolean;
}
