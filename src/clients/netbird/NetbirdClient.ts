import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request, type Dispatcher } from 'undici';
import { z } from 'zod';
import { NetbirdApiError, isRetryableStatus } from './NetbirdApiError';
import { backoffMs, DEFAULT_RETRY, parseRetryAfter, type RetryPolicy } from './retry';
import { upstreamErrorClass, type UpstreamCallHook } from '../../observability/metrics';
import {
  errorBodySchema,
  groupSchema,
  peerSchema,
  policySchema,
  setupKeySchema,
  userSchema,
  type GroupRequest,
  type NetbirdGroup,
  type NetbirdPeer,
  type NetbirdPolicy,
  type NetbirdSetupKey,
  type NetbirdUser,
  type PeerUpdate,
  type PolicyRequest,
  type SetupKeyCreate,
  type UserUpdate,
} from './schemas';

export interface NetbirdClientOptions {
  /** The management API's origin, e.g. `https://api.netbird.io` (a trailing `/api` is accepted too). */
  baseUrl: string;
  /** A personal access token, sent as `Authorization: Token <PAT>`. */
  token: string;
  /** Per attempt: connecting, waiting for the answer and reading it. Default 15 s. */
  timeoutMs?: number;
  /** PEM of the CA that signed the management server's certificate, when it is not a public one. */
  ca?: string | Buffer;
  retry?: Partial<RetryPolicy>;
  /** How the client waits between attempts; tests pass one that records the waits instead of sleeping. */
  sleep?: (ms: number) => Promise<void>;
  /** Told of every HTTP attempt once it ends (a retried call counts each): the operation, `ok` or the error class, seconds. */
  onCall?: UpstreamCallHook;
}

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

interface Call<T> {
  params?: Record<string, string>;
  query?: Record<string, string | undefined>;
  body?: unknown;
  schema: z.ZodType<T>;
}

const empty = z.unknown();

/**
 * pveflow's typed client for the NetBird management API (users, peers, groups, policies, setup keys). Every answer
 * passes a zod schema; every failure is one NetbirdApiError naming the operation and what NetBird said. The client
 * retries a short burst of 5xx itself and rides out NetBird's rate limiter for longer (bounded, honouring
 * Retry-After, backing off with jitter when a 429 carries none); longer outages are its caller's to retry.
 */
export class NetbirdClient {
  private readonly origin: string;
  private readonly token: string;
  private readonly timeoutMs: number;
  private readonly retry: RetryPolicy;
  private readonly agent: Agent;
  private readonly wait: (ms: number) => Promise<void>;
  private readonly onCall?: UpstreamCallHook;

  constructor(opts: NetbirdClientOptions) {
    this.onCall = opts.onCall;
    this.origin = opts.baseUrl.replace(/\/+$/, '').replace(/\/api$/, '');
    this.token = opts.token;
    this.timeoutMs = opts.timeoutMs ?? 15_000;
    this.retry = { ...DEFAULT_RETRY, ...opts.retry };
    this.agent = new Agent({ connect: { ca: opts.ca, timeout: this.timeoutMs } });
    this.wait = opts.sleep ?? ((ms) => sleep(ms));
  }

  /** Closes the client's connections. */
  async close(): Promise<void> {
    await this.agent.close();
  }

  // ---- users -------------------------------------------------------------------------------------------------

  listUsers(): Promise<NetbirdUser[]> {
    return this.call('GET', '/api/users', { schema: z.array(userSchema) });
  }

  /** NetBird replaces role, auto_groups and is_blocked together: send all three. */
  updateUser(userId: string, update: UserUpdate): Promise<NetbirdUser> {
    return this.call('PUT', '/api/users/{userId}', { params: { userId }, body: update, schema: userSchema });
  }

  // ---- peers -------------------------------------------------------------------------------------------------

  /** NetBird's `name` filter matches substrings (`web` finds `web-2`); use `peersNamed` for an exact match. */
  listPeers(filter: { name?: string; ip?: string } = {}): Promise<NetbirdPeer[]> {
    return this.call('GET', '/api/peers', { query: filter, schema: z.array(peerSchema) });
  }

  /** Peers whose name is exactly `name` (NetBird allows several). */
  async peersNamed(name: string): Promise<NetbirdPeer[]> {
    return (await this.listPeers({ name })).filter((p) => p.name === name);
  }

  getPeer(peerId: string): Promise<NetbirdPeer> {
    return this.call('GET', '/api/peers/{peerId}', { params: { peerId }, schema: peerSchema });
  }

  updatePeer(peerId: string, update: PeerUpdate): Promise<NetbirdPeer> {
    return this.call('PUT', '/api/peers/{peerId}', { params: { peerId }, body: update, schema: peerSchema });
  }

  async deletePeer(peerId: string): Promise<void> {
    await this.call('DELETE', '/api/peers/{peerId}', { params: { peerId }, schema: empty });
  }

  // ---- groups ------------------------------------------------------------------------------------------------

  /**
   * `name` is an exact match on NetBird's side, and a name no group has is answered 404 (`group: <name> not found`),
   * not `[]` (v0.77.1, seen against NetBird's own server): that 404 is an empty list here.
   */
  async listGroups(filter: { name?: string } = {}): Promise<NetbirdGroup[]> {
    try {
      return await this.call('GET', '/api/groups', { query: filter, schema: z.array(groupSchema) });
    } catch (err) {
      if (filter.name !== undefined && err instanceof NetbirdApiError && err.status === 404) return [];
      throw err;
    }
  }

  getGroup(groupId: string): Promise<NetbirdGroup> {
    return this.call('GET', '/api/groups/{groupId}', { params: { groupId }, schema: groupSchema });
  }

  createGroup(group: GroupRequest): Promise<NetbirdGroup> {
    return this.call('POST', '/api/groups', { body: group, schema: groupSchema });
  }

  /** Replaces name and membership: peers not listed leave the group. */
  updateGroup(groupId: string, group: GroupRequest): Promise<NetbirdGroup> {
    return this.call('PUT', '/api/groups/{groupId}', { params: { groupId }, body: group, schema: groupSchema });
  }

  /** NetBird refuses (400) while a policy, setup key or user still refers to the group. */
  async deleteGroup(groupId: string): Promise<void> {
    await this.call('DELETE', '/api/groups/{groupId}', { params: { groupId }, schema: empty });
  }

  // ---- policies ----------------------------------------------------------------------------------------------

  listPolicies(): Promise<NetbirdPolicy[]> {
    return this.call('GET', '/api/policies', { schema: z.array(policySchema) });
  }

  getPolicy(policyId: string): Promise<NetbirdPolicy> {
    return this.call('GET', '/api/policies/{policyId}', { params: { policyId }, schema: policySchema });
  }

  createPolicy(policy: PolicyRequest): Promise<NetbirdPolicy> {
    return this.call('POST', '/api/policies', { body: policy, schema: policySchema });
  }

  updatePolicy(policyId: string, policy: PolicyRequest): Promise<NetbirdPolicy> {
    return this.call('PUT', '/api/policies/{policyId}', { params: { policyId }, body: policy, schema: policySchema });
  }

  async deletePolicy(policyId: string): Promise<void> {
    await this.call('DELETE', '/api/policies/{policyId}', { params: { policyId }, schema: empty });
  }

  // ---- setup keys --------------------------------------------------------------------------------------------

  listSetupKeys(): Promise<NetbirdSetupKey[]> {
    return this.call('GET', '/api/setup-keys', { schema: z.array(setupKeySchema) });
  }

  getSetupKey(keyId: string): Promise<NetbirdSetupKey> {
    return this.call('GET', '/api/setup-keys/{keyId}', { params: { keyId }, schema: setupKeySchema });
  }

  /** The only answer that carries the key in clear: keep it secret, NetBird will never show it again. */
  createSetupKey(key: SetupKeyCreate): Promise<NetbirdSetupKey> {
    return this.call('POST', '/api/setup-keys', { body: key, schema: setupKeySchema });
  }

  updateSetupKey(keyId: string, update: { revoked: boolean; auto_groups: string[] }): Promise<NetbirdSetupKey> {
    return this.call('PUT', '/api/setup-keys/{keyId}', { params: { keyId }, body: update, schema: setupKeySchema });
  }

  /** Revokes the key and keeps its auto_groups (NetBird's PUT needs both). Revoking cannot be undone. */
  async revokeSetupKey(keyId: string): Promise<NetbirdSetupKey> {
    const current = await this.getSetupKey(keyId);
    if (current.revoked) return current;
    return this.updateSetupKey(keyId, { revoked: true, auto_groups: current.auto_groups });
  }

  async deleteSetupKey(keyId: string): Promise<void> {
    await this.call('DELETE', '/api/setup-keys/{keyId}', { params: { keyId }, schema: empty });
  }

  // ---- transport ---------------------------------------------------------------------------------------------

  private async call<T>(method: Method, template: string, call: Call<T>): Promise<T> {
    const operation = `${method} ${template}`;
    const path = template.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(call.params?.[name] ?? ''));
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(call.query ?? {})) if (v !== undefined) query.set(k, v);
    const url = `${this.origin}${path}${query.size ? `?${query}` : ''}`;

    for (let attempt = 1; ; attempt++) {
      const started = performance.now();
      const outcome = await this.attempt(method, url, call.body);
      const seconds = (performance.now() - started) / 1000;
      if (outcome.kind === 'ok') {
        this.onCall?.('netbird', operation, 'ok', seconds);
        return this.parse(operation, path, outcome.status, outcome.body, call.schema, attempt);
      }

      const error = new NetbirdApiError({
        operation,
        path,
        status: outcome.kind === 'refused' ? outcome.status : undefined,
        netbirdMessage: this.redact(outcome.message),
        attempts: attempt,
        retryAfterSeconds: outcome.kind === 'refused' ? outcome.retryAfterSeconds : undefined,
        cause: outcome.kind === 'transport' ? outcome.cause : undefined,
      });
      this.onCall?.('netbird', operation, upstreamErrorClass(error), seconds);
      const limit = outcome.kind === 'refused' && outcome.status === 429 ? this.retry.rateLimitedAttempts : this.retry.attempts;
      if (attempt >= limit || !this.mayRetry(method, outcome)) throw error;
      await this.wait(backoffMs(this.retry, attempt, error.retryAfterSeconds));
    }
  }

  /**
   * GET, PUT and DELETE are safe to repeat. A POST is repeated only when NetBird cannot have acted on it (429, or
   * no connection at all): after a 5xx or a timeout it may have created the object, and only the caller, which
   * looks objects up by name before creating them, can tell.
   */
  private mayRetry(method: Method, outcome: Exclude<Outcome, { kind: 'ok' }>): boolean {
    if (outcome.kind === 'refused') {
      if (!isRetryableStatus(outcome.status)) return false;
      return method !== 'POST' || outcome.status === 429;
    }
    return method !== 'POST' || outcome.connectFailed;
  }

  private async attempt(method: Method, url: string, body: unknown): Promise<Outcome> {
    try {
      const res = await request(url, {
        method,
        dispatcher: this.agent as Dispatcher,
        headers: {
          authorization: `Token ${this.token}`,
          accept: 'application/json',
          ...(body !== undefined && { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      const text = await res.body.text();
      if (res.statusCode >= 200 && res.statusCode < 300) return { kind: 'ok', status: res.statusCode, body: text };
      return {
        kind: 'refused',
        status: res.statusCode,
        message: errorMessage(text, res.statusCode),
        retryAfterSeconds: parseRetryAfter(res.headers['retry-after']),
      };
    } catch (err) {
      const code = (err as { code?: string }).code ?? (err as Error).name;
      return {
        kind: 'transport',
        message: `${code}: ${(err as Error).message}`,
        connectFailed: code === 'ECONNREFUSED' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ENOTFOUND',
        cause: err,
      };
    }
  }

  private parse<T>(operation: string, path: string, status: number, text: string, schema: z.ZodType<T>, attempts: number): T {
    const fail = (why: string) => new NetbirdApiError({ operation, path, status, netbirdMessage: `unexpected answer: ${why}`, attempts });
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      throw fail('not JSON');
    }
    const parsed = schema.safeParse(json);
    // zod's messages name the field and the expected type, never the value (which may be a setup key).
    if (!parsed.success) throw fail(z.prettifyError(parsed.error).replace(/\s*\n\s*/g, '; '));
    return parsed.data;
  }

  /**
   * NetBird never echoes the token, but a proxy's error page might. Real PATs are long (`nbp_` + 36 characters);
   * a token of a few characters would match inside ordinary words, so only plausible tokens are searched for.
   */
  private redact(text: string): string {
    return this.token.length >= 8 ? text.split(this.token).join('[token]') : text;
  }
}

type Outcome =
  | { kind: 'ok'; status: number; body: string }
  | { kind: 'refused'; status: number; message: string; retryAfterSeconds: number | undefined }
  | { kind: 'transport'; message: string; connectFailed: boolean; cause: unknown };

function errorMessage(text: string, status: number): string {
  try {
    const parsed = errorBodySchema.safeParse(JSON.parse(text));
    if (parsed.success && parsed.data.message) return parsed.data.message;
  } catch {
    // Not JSON (a proxy's HTML page, an empty body): fall back to the status.
  }
  return text.trim() && text.length <= 200 ? text.trim() : `HTTP ${status}`;
}
