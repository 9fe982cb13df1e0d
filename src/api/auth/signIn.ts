import { OidcClient } from './oidcClient';
import type { Config } from '../../config';
import { oidcSettingsFrom, sessionDir, sessionTimesFrom, type OidcSettings, type SessionTimes } from './oidcSettings';
import { SessionStore } from './sessionStore';

/** Sign-in through the provider: its client, the sessions it opens, and their cookies' names. */
export interface SignIn {
  oidc: OidcClient;
  sessions: SessionStore;
  settings: OidcSettings;
}

export function createSignIn(settings: OidcSettings, dir: string, times: SessionTimes): SignIn {
  return { oidc: new OidcClient(settings), sessions: new SessionStore(dir, times), settings };
}

/** The session's cookie; and the one that binds a sign-in under way to the browser that started it. */
export const SESSION_COOKIE = 'pveflow_session';
export const LOGIN_COOKIE = 'pveflow_login';
/** The header the console sends its session's CSRF token in, on every call. */
export const CSRF_HEADER = 'x-pveflow-csrf';

/** A cookie header's value by name (cookies are few and simple here: no library needed to read one). */
export function cookieOf(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim() || undefined;
  }
  return undefined;
}

/** `{ signIn }` for createApp from the configuration (OIDC_*, SESSION_*), or nothing when no issuer is set. */
export function signInFrom(config: Config): { signIn?: SignIn } {
  const settings = oidcSettingsFrom(config);
  return settings ? { signIn: createSignIn(settings, sessionDir(config), sessionTimesFrom(config)) } : {};
}
