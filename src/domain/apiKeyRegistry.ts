import type { IssuedKey, IssueKeyArgs, KeyUse } from '../contracts/apiKeyRegistryMessages';

/**
 * The rules of the key registry (src/workflows/apiKeyRegistry.ts), plain functions tested without Temporal. Its state
 * is bounded: at most MAX_ISSUED_KEYS keys, the last use of at most MAX_KEY_USE ids, and a key that expired more
 * than EXPIRED_KEY_KEPT_DAYS ago is dropped when a run continues as new.
 */
export const MAX_ISSUED_KEYS = 1000;
export const MAX_KEY_USE = MAX_ISSUED_KEYS + 200;
export const EXPIRED_KEY_KEPT_DAYS = 30;

/** Why the registry cannot take this key, or undefined when it can (or already holds it: a retried issue). */
export function issueRefusal(keys: readonly IssuedKey[], ask: IssueKeyArgs): string | undefined {
  const same = keys.find((k) => k.id === ask.id);
  if (same) return same.sha256 === ask.sha256 ? undefined : `a key with id ${ask.id} exists already`;
  if (keys.some((k) => k.sha256 === ask.sha256)) return 'this key is issued already';
  if (keys.length >= MAX_ISSUED_KEYS) return `the registry holds ${MAX_ISSUED_KEYS} keys, its limit: revoke keys no longer used (expired ones first)`;
  if (ask.role === 'operator' ? ask.org !== undefined : ask.org === undefined) return `a ${ask.role} key ${ask.role === 'operator' ? 'has no org' : 'needs an org'}`;
  if (ask.role === 'requester' && ask.email === undefined) return 'a requester key needs an email';
  return undefined;
}

/** Why `id` cannot be revoked by someone confined to `org` (undefined: anyone), or undefined when it can. */
export function revokeRefusal(keys: readonly IssuedKey[], id: string, org: string | undefined): string | undefined {
  const key = keys.find((k) => k.id === id);
  // A key of another org does not exist for an admin: the same answer as an unknown id, so ids cannot be probed.
  if (!key || (org !== undefined && key.org !== org)) return `no API key ${id}`;
  return undefined;
}

export function isExpired(key: Pick<IssuedKey, 'expiresAt'>, nowMs: number): boolean {
  return key.expiresAt !== undefined && Date.parse(key.expiresAt) <= nowMs;
}

/** The keys a new run carries: those expired for longer than EXPIRED_KEY_KEPT_DAYS are dropped. */
export function keysToCarry(keys: readonly IssuedKey[], nowMs: number): IssuedKey[] {
  const cutoff = nowMs - EXPIRED_KEY_KEPT_DAYS * 86_400_000;
  return keys.filter((k) => k.expiresAt === undefined || Date.parse(k.expiresAt) > cutoff);
}

/** Merges reported uses (the later time wins) and keeps the most recent MAX_KEY_USE. */
export function mergeKeyUse(known: KeyUse, reported: KeyUse): KeyUse {
  const merged: KeyUse = { ...known };
  for (const [id, at] of Object.entries(reported)) {
    if (typeof at !== 'string' || Number.isNaN(Date.parse(at))) continue;
    const before = merged[id];
    if (before === undefined || Date.parse(at) > Date.parse(before)) merged[id] = at;
  }
  const entries = Object.entries(merged);
  if (entries.length <= MAX_KEY_USE) return merged;
  return Object.fromEntries(entries.sort((a, b) => Date.parse(b[1]) - Date.parse(a[1])).slice(0, MAX_KEY_USE));
}
