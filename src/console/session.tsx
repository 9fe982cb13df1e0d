import type { SessionAnswer } from '../contracts/apiSchemas';
import { api, authHeader } from './api';

/** Who a key is, as `GET /api/session` answers: its role, its org, and per org it sees its quota's limits and use. */
export type Session = SessionAnswer;
export type Role = Session['role'];

/**
 * The API key lives in session storage only: gone when the tab closes, never in a URL, a cookie or local storage.
 */
const STORAGE_KEY = 'pveflow.apiKey';

export function storedKey(): string | undefined {
  try {
    return sessionStorage.getItem(STORAGE_KEY) ?? undefined;
  } catch {
    return undefined; // storage disabled: the key is then kept in memory only, for this page load
  }
}

export function storeKey(key: string | undefined): void {
  try {
    if (key === undefined) sessionStorage.removeItem(STORAGE_KEY);
    else sessionStorage.setItem(STORAGE_KEY, key);
  } catch {
    // see storedKey
  }
}

export function whoIs(key: string): Promise<Session> {
  return api<Session>(key, '/api/session');
}

/** Whether this pveflow offers sign-in through an identity provider (the answer of GET /auth/providers). */
export async function providerSignIn(): Promise<string | undefined> {
  try {
    const res = await fetch('/auth/providers', { cache: 'no-store', signal: AbortSignal.timeout(10_000) });
    const offer = res.ok ? ((await res.json()) as { login?: string }) : {};
    return typeof offer.login === 'string' ? offer.login : undefined;
  } catch {
    return undefined;
  }
}

/** Ends the browser's session at pveflow; resolves to where to go next (the provider's sign-out page, where offered). */
export async function endSession(key: string): Promise<string> {
  try {
    const res = await fetch('/auth/logout', { method: 'POST', headers: authHeader(key), cache: 'no-store', signal: AbortSignal.timeout(10_000) });
    const answer = res.ok ? ((await res.json()) as { redirect?: string }) : {};
    return typeof answer.redirect === 'string' ? answer.redirect : '/';
  } catch {
    return '/';
  }
}

export function describeSession(s: Session): string {
  const role = { requester: 'Requester', admin: 'Admin', operator: 'Operator' }[s.role];
  return s.org ? `${role} · ${s.org}` : `${role} · all organisations`;
}

const quotaUnits = [
  ['vms', 'VMs', 1],
  ['cores', 'cores', 1],
  ['memory_mib', 'GiB memory', 1024],
  ['disk_gib', 'GiB disk', 1],
] as const;

/** "Acme Corp: 2/4 VMs · 8/16 cores": what each org's open requests hold of the limits it has (none: nothing shown). */
export function describeQuotas(s: Session): string[] {
  return (s.quotas ?? []).flatMap((q) => {
    const parts = quotaUnits.flatMap(([name, unit, per]) => {
      const limit = q.limits[name];
      if (limit === undefined) return [];
      const show = (n: number) => (per === 1 ? String(n) : String(Math.round((n / per) * 10) / 10));
      return [`${show(q.use[name])}/${show(limit)} ${unit}`];
    });
    return parts.length ? [`${q.org}: ${parts.join(' · ')}`] : [];
  });
}
