import { createHash, timingSafeEqual } from 'node:crypto';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { issuedKeysQuery, keysUsedSignal, type IssuedKey, type KeyUse } from '../../contracts/apiKeyRegistryMessages';
import { apiKeyRegistryWorkflowId } from '../../contracts/workflowIds';
import { isExpired } from '../../domain/apiKeyRegistry';
import type { Logger } from '../../observability';
import type { ApiKeyStore, Principal } from './apiKeys';

/**
 * How fresh each API process's copy of the issued keys is. A key issued or revoked through any API process holds in
 * every other within REFRESH_MS (plus one query's time). When the registry has not answered for STALE_AFTER_MS (no
 * worker polling, Temporal down), issued keys are refused with 503 rather than trusted on an old copy: a revocation
 * is never ignored for longer than that. Keys of the file stay usable, so an operator can still sign in.
 */
export const ISSUED_KEYS_TIMING = {
  refreshMs: 2_000,
  staleAfterMs: 30_000,
  /** A key's last use is reported at most this often per key and API process: it costs one signal per report, batched. */
  useReportMs: 60_000,
  queryTimeoutMs: 5_000,
} as const;

export type IssuedKeysTiming = { [K in keyof typeof ISSUED_KEYS_TIMING]: number };

/** What the authentication middleware, the codec server and the operator sessions ask of the keys. */
export interface KeyLookup {
  authenticate(key: string): Principal | undefined;
  principalById(id: string): Principal | undefined;
  /** Why `key` was not taken (called only after authenticate answered undefined): 401 with a reason, or 503. */
  explain?(key: string): { status: 401 | 503; detail: string } | undefined;
}

/** The principal an issued key stands for. */
export function principalOfIssued(k: IssuedKey): Principal {
  const email = k.email !== undefined ? { email: k.email } : {};
  if (k.role === 'operator') return { role: 'operator', id: k.id, ...email };
  if (k.role === 'admin') return { role: 'admin', id: k.id, org: k.org!, ...email };
  return { role: 'requester', id: k.id, org: k.org!, email: k.email! };
}

/**
 * The deployment's keys as one API process sees them: the file's (API_KEYS_FILE / API_KEYS, fixed at start-up) and
 * the issued ones (the key registry workflow, refreshed by a query every few seconds — never per request). Each
 * authentication is local: a hash and a constant-time comparison against every key.
 */
export class DeploymentKeys implements KeyLookup {
  private issued: Array<{ key: IssuedKey; hash: Buffer; principal: Principal }> = [];
  private version: number | undefined;
  private freshAt = 0;
  private lastError: string | undefined;
  private readonly reported = new Map<string, number>();
  private pendingUse: KeyUse = {};
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Only a refreshing copy can go stale; one that is read on demand (an app built by a test) holds what it read. */
  private refreshing = false;
  private readonly timing: IssuedKeysTiming;

  constructor(
    readonly file: ApiKeyStore,
    private readonly registry?: { client: Client; taskQueue: string; logger?: Logger; timing?: Partial<IssuedKeysTiming>; now?: () => number },
  ) {
    this.timing = { ...ISSUED_KEYS_TIMING, ...registry?.timing };
  }

  private now(): number {
    return this.registry?.now?.() ?? Date.now();
  }

  /** Reads the registry now, then every refreshMs until stop(). Resolves after the first read (failed or not). */
  async start(): Promise<void> {
    if (!this.registry) return;
    this.refreshing = true;
    await this.refresh();
    const tick = () => {
      if (this.stopped) return;
      this.timer = setTimeout(() => void this.refresh().finally(tick), this.timing.refreshMs);
      this.timer.unref();
    };
    tick();
  }

  /** Stops refreshing, after reporting the uses not yet reported. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.reportUse();
  }

  /** One read of the registry (and the uses seen since the last report). */
  async refresh(): Promise<void> {
    const registry = this.registry;
    if (!registry) return;
    const handle = registry.client.workflow.getHandle(apiKeyRegistryWorkflowId(registry.taskQueue));
    try {
      const answer = await registry.client.withDeadline(Date.now() + this.timing.queryTimeoutMs, () => handle.query(issuedKeysQuery, { ...(this.version !== undefined ? { since: this.version } : {}) }));
      if (answer.keys) {
        this.issued = answer.keys.map((key) => ({ key, hash: Buffer.from(key.sha256, 'hex'), principal: principalOfIssued(key) }));
      }
      this.version = answer.version;
      this.markFresh();
    } catch (err) {
      // No registry yet (no worker of this version has started it): no key has been issued.
      if (err instanceof WorkflowNotFoundError) {
        this.issued = [];
        this.version = undefined;
        this.markFresh();
      } else {
        const message = err instanceof Error ? err.message : String(err);
        if (this.lastError === undefined) registry.logger?.warn({ error: message }, 'the API key registry did not answer; issued keys are refused once their copy is stale');
        this.lastError = message;
      }
    }
    await this.reportUse();
  }

  private markFresh(): void {
    if (this.lastError !== undefined) this.registry?.logger?.info({}, 'the API key registry answers again');
    this.lastError = undefined;
    this.freshAt = this.now();
  }

  private get stale(): boolean {
    return this.refreshing && this.now() - this.freshAt > this.timing.staleAfterMs;
  }

  /** The issued keys as of the last read (for the list). */
  issuedKeys(): IssuedKey[] {
    return this.issued.map((e) => e.key);
  }

  /** Tells every refresh after this one to read the keys in full (called after an issue or revocation through this process). */
  invalidate(): void {
    this.version = undefined;
  }

  private matchIssued(key: string): { key: IssuedKey; principal: Principal } | undefined {
    const presented = createHash('sha256').update(key, 'utf8').digest();
    let found: { key: IssuedKey; principal: Principal } | undefined;
    // Every hash compared, no early exit: the timing says nothing about which key matched.
    for (const e of this.issued) if (timingSafeEqual(presented, e.hash) && !found) found = e;
    return found;
  }

  authenticate(key: string): Principal | undefined {
    const fromFile = this.file.authenticate(key);
    if (fromFile) {
      this.noteUse(fromFile.id);
      return fromFile;
    }
    if (this.stale) return undefined;
    const issued = this.matchIssued(key);
    if (!issued || isExpired(issued.key, this.now())) return undefined;
    this.noteUse(issued.key.id);
    return issued.principal;
  }

  explain(key: string): { status: 401 | 503; detail: string } | undefined {
    if (this.stale) {
      return { status: 503, detail: 'keys issued at run time cannot be checked now: the key registry has not answered (is a pveflow worker running?); try again' };
    }
    const issued = this.matchIssued(key);
    if (issued && isExpired(issued.key, this.now())) return { status: 401, detail: `API key ${issued.key.id} expired at ${issued.key.expiresAt}` };
    return undefined;
  }

  principalById(id: string): Principal | undefined {
    const fromFile = this.file.principalById(id);
    if (fromFile) return fromFile;
    if (this.stale) return undefined;
    const issued = this.issued.find((e) => e.key.id === id);
    return issued && !isExpired(issued.key, this.now()) ? issued.principal : undefined;
  }

  /** Coarse: a key's use is noted at most once per useReportMs, and sent with the next refresh. */
  private noteUse(id: string): void {
    if (!this.registry) return;
    const now = this.now();
    const last = this.reported.get(id);
    if (last !== undefined && now - last < this.timing.useReportMs) return;
    this.reported.set(id, now);
    this.pendingUse[id] = new Date(now).toISOString();
  }

  private async reportUse(): Promise<void> {
    const registry = this.registry;
    if (!registry || Object.keys(this.pendingUse).length === 0) return;
    const used = this.pendingUse;
    this.pendingUse = {};
    try {
      await registry.client.withDeadline(Date.now() + this.timing.queryTimeoutMs, () => registry.client.workflow.getHandle(apiKeyRegistryWorkflowId(registry.taskQueue)).signal(keysUsedSignal, { used }));
    } catch {
      // Not reported this time: kept for the next refresh (a later use of the same key wins).
      this.pendingUse = { ...used, ...this.pendingUse };
    }
  }
}
