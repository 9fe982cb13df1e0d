import { api, type Session } from './api';

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

export function describeSession(s: Session): string {
  const role = { requester: 'Requester', admin: 'Admin', operator: 'Operator' }[s.role];
  return s.org ? `${role} · ${s.org}` : `${role} · all organisations`;
}
