import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CliError } from '../cliError';
import { exitCodes } from '../exitCodes';

type OpenIdClient = typeof import('openid-client', { with: { 'resolution-mode': 'import' } });
type Configuration = InstanceType<OpenIdClient['Configuration']>;

/** What `pveflow login` keeps per API: the provider's tokens for the CLI's client. */
export interface StoredSignIn {
  issuer: string;
  client_id: string;
  id_token: string;
  refresh_token?: string;
  /** The ID token's expiry, seconds since the epoch. */
  expires_at: number;
  email?: string;
}

/** Refreshed this long before it expires, so that a call never leaves with a token about to lapse. */
const REFRESH_MARGIN_S = 60;

/** The user's config directory for pveflow: PVEFLOW_CONFIG_DIR, else $XDG_CONFIG_HOME/pveflow, else ~/.config/pveflow. */
export function configDir(env: NodeJS.ProcessEnv): string {
  return env.PVEFLOW_CONFIG_DIR ?? join(env.XDG_CONFIG_HOME ?? join(env.HOME ?? homedir(), '.config'), 'pveflow');
}

const tokensFile = (dir: string) => join(dir, 'tokens.json');

function readAll(dir: string): Record<string, StoredSignIn> {
  try {
    return JSON.parse(readFileSync(tokensFile(dir), 'utf8')) as Record<string, StoredSignIn>;
  } catch {
    return {};
  }
}

/** Written 0600 in a 0700 directory, through a rename: another user reads nothing, a crash leaves the old file. */
function writeAll(dir: string, all: Record<string, StoredSignIn>): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = `${tokensFile(dir)}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(all, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, tokensFile(dir));
}

export function saveSignIn(dir: string, apiUrl: string, signIn: StoredSignIn): void {
  writeAll(dir, { ...readAll(dir), [apiUrl]: signIn });
}

/** Forgets the sign-in for `apiUrl`; returns what was kept, if anything. */
export function forgetSignIn(dir: string, apiUrl: string): StoredSignIn | undefined {
  const all = readAll(dir);
  const gone = all[apiUrl];
  if (gone) {
    delete all[apiUrl];
    writeAll(dir, all);
  }
  return gone;
}

export function loadOpenIdClient(): Promise<OpenIdClient> {
  return import('openid-client');
}

const loopback = (u: URL) => ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname);

/** The provider's metadata for the CLI's public client; plain http only for a provider on this machine. */
export async function discoverProvider(issuer: string, clientId: string, timeoutS: number): Promise<{ oidc: OpenIdClient; config: Configuration }> {
  const oidc = await loadOpenIdClient();
  const url = new URL(issuer);
  if (url.protocol !== 'https:' && !loopback(url)) throw new CliError(`the identity provider ${issuer} is not https: refusing to sign in over plain http`, exitCodes.auth);
  try {
    const config = await oidc.discovery(url, clientId, undefined, oidc.None(), { timeout: timeoutS, ...(url.protocol === 'http:' ? { execute: [oidc.allowInsecureRequests] } : {}) });
    return { oidc, config };
  } catch (err) {
    throw new CliError(`the identity provider at ${issuer} cannot be reached: ${(err as Error).message}`, exitCodes.unavailable);
  }
}

/** The stored sign-in as it should be kept after a token answer (login, refresh). */
export function storedFrom(issuer: string, clientId: string, tokens: { id_token?: string; refresh_token?: string; claims(): { exp: number; email?: unknown } | undefined }, previousRefresh?: string): StoredSignIn {
  const claims = tokens.claims();
  if (!tokens.id_token || !claims) throw new CliError('the identity provider sent no ID token', exitCodes.auth);
  const refresh = tokens.refresh_token ?? previousRefresh;
  return { issuer, client_id: clientId, id_token: tokens.id_token, ...(refresh ? { refresh_token: refresh } : {}), expires_at: claims.exp, ...(typeof claims.email === 'string' ? { email: claims.email } : {}) };
}

/**
 * The bearer for `apiUrl` from a `pveflow login`: the ID token, refreshed with the refresh token when it is about to
 * expire (and the refreshed pair saved). The ID token, not the access token: its audience is always the CLI's client
 * and it is always a JWT the API can check, while some providers' access tokens are opaque or meant for another API.
 */
export async function storedBearer(dir: string, apiUrl: string, timeoutS: number): Promise<string | undefined> {
  const kept = readAll(dir)[apiUrl];
  if (!kept) return undefined;
  if (kept.expires_at - REFRESH_MARGIN_S > Date.now() / 1000) return kept.id_token;
  if (!kept.refresh_token) throw new CliError(`your sign-in to ${apiUrl} has expired: run \`pveflow login\` again`, exitCodes.auth);
  const { oidc, config } = await discoverProvider(kept.issuer, kept.client_id, timeoutS);
  let refreshed: Awaited<ReturnType<OpenIdClient['refreshTokenGrant']>>;
  try {
    refreshed = await oidc.refreshTokenGrant(config, kept.refresh_token);
  } catch (err) {
    throw new CliError(`your sign-in to ${apiUrl} could not be renewed (${(err as Error).message}): run \`pveflow login\` again`, exitCodes.auth);
  }
  const next = storedFrom(kept.issuer, kept.client_id, refreshed, kept.refresh_token);
  saveSignIn(dir, apiUrl, next);
  return next.id_token;
}
