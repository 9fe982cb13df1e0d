import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports';
import { waitFor } from './waitFor';

/**
 * A real OpenID provider for the sign-in tests: Dex's own server (cmd/dex, the version NetBird's server embeds), built
 * by scripts/install-dex.sh into .tools/dex. It serves its own login page, signs its own tokens, runs the device grant,
 * and ends sessions at /logout; nothing here signs or checks a token.
 *
 * Its users: two orgs (Acme Corp, Globex) and the three roles, through the groups claim that OIDC_ROLES maps; one
 * consultant the provider vouches for, one whose e-mail it does not verify, one with no mapped group.
 */
export const dexBinary = join(__dirname, '..', '..', '.tools', 'dex', 'bin', 'dex');

/** Why the sign-in tests cannot run here, or undefined when they can. */
export function dexMissing(): string | undefined {
  return existsSync(dexBinary) ? undefined : `no Dex at ${dexBinary} (bash scripts/install-dex.sh)`;
}

/** Every test user's password (their bcrypt hash, cost 10, is what Dex is given). */
export const testPassword = 'sign-in-test-password';
const testPasswordHash = '$2a$10$NcteYmk5hqZ4HPe.ygZQteZ/TxRjBBL2MBEZcwtPwh4P7wkKypDVm';

export interface TestUser {
  email: string;
  groups: string[];
  emailVerified?: boolean;
}

export const testUsers = {
  /** A consultant filing for Acme Corp: a requester there. */
  consultant: { email: 'carla@consultancy.example', groups: ['acme-requesters'] },
  acmeAdmin: { email: 'ada@acme.example', groups: ['acme-admins', 'staff'] },
  globexRequester: { email: 'gus@globex.example', groups: ['globex-requesters'] },
  operator: { email: 'olga@pveflow.example', groups: ['pveflow-operators'] },
  /** In a mapped group, but the provider has not verified the e-mail. */
  unverified: { email: 'uma@acme.example', groups: ['acme-requesters'], emailVerified: false },
  /** Known to the provider, in no group pveflow maps. */
  outsider: { email: 'otto@elsewhere.example', groups: ['staff'] },
} satisfies Record<string, TestUser>;

/** OIDC_ROLES for these users. */
export const testRoles = {
  'acme-requesters': { role: 'requester', org: 'Acme Corp' },
  'acme-admins': { role: 'admin', org: 'Acme Corp' },
  'globex-requesters': { role: 'requester', org: 'Globex' },
  'pveflow-operators': { role: 'operator' },
};

export const consoleClient = { id: 'pveflow-console', secret: 'console-client-secret-for-tests' };
export const cliClient = { id: 'pveflow-cli' };
/** A client of another application at the same provider: its tokens are not for pveflow. */
export const otherClient = { id: 'other-app', secret: 'other-app-secret-for-tests' };

export interface OidcProvider {
  issuer: string;
  /** OIDC_* for a pveflow whose console answers at `apiUrl`. */
  env: Record<string, string>;
  /** Tokens straight from the provider (resource-owner password grant, Dex's local users), for API tests. */
  passwordTokens(user: TestUser, client?: { id: string; secret?: string }): Promise<{ id_token: string; access_token: string; refresh_token?: string }>;
  stop(): Promise<void>;
}

export interface OidcProviderOptions {
  /** Where pveflow's console answers, e.g. http://127.0.0.1:4321: its callback is registered with the provider. */
  apiUrl: string;
  /** Dex's lifetime of ID and access tokens (Go duration); default 1h. */
  tokenLifetime?: string;
  /** A port to listen on (to start a provider again where it was); default a free one. */
  port?: number;
  /**
   * Loopback redirect URIs the CLI's client may use (`pveflow login --loopback`). Dex accepts any loopback port only
   * for a public client that lists no redirect URI at all, and this one must list Dex's own device callback (Dex
   * compares it without the issuer's /dex path), so each loopback URI is registered exactly, as at stricter providers.
   */
  cliLoopbackRedirects?: string[];
}

export async function startOidcProvider(options: OidcProviderOptions): Promise<OidcProvider> {
  const port = options.port ?? (await freePort());
  const issuer = `http://127.0.0.1:${port}/dex`;
  const dir = mkdtempSync(join(tmpdir(), 'pveflow-dex-'));
  const config = {
    issuer,
    storage: { type: 'memory' },
    web: { http: `127.0.0.1:${port}` },
    logger: { level: 'warn', format: 'text' },
    expiry: { idTokens: options.tokenLifetime ?? '1h', signingKeys: '6h' },
    oauth2: { skipApprovalScreen: true, passwordConnector: 'local' },
    // Dex's sessions make it offer RP-initiated sign-out (end_session_endpoint).
    sessions: { absoluteLifetime: '1h', validIfNotUsedFor: '30m' },
    enablePasswordDB: true,
    staticClients: [
      {
        id: consoleClient.id,
        name: 'pveflow',
        secret: consoleClient.secret,
        redirectURIs: [`${options.apiUrl}/auth/callback`],
        postLogoutRedirectURIs: [`${options.apiUrl}/`],
      },
      // Dex sends a device sign-in back through its own /device/callback, which the client must list.
      { id: cliClient.id, name: 'pveflow CLI', public: true, redirectURIs: ['/dex/device/callback', ...(options.cliLoopbackRedirects ?? [])] },
      { id: otherClient.id, name: 'Another application', secret: otherClient.secret, redirectURIs: ['http://127.0.0.1:9/callback'] },
    ],
    staticPasswords: Object.values(testUsers).map((u: TestUser, i) => ({
      email: u.email,
      hash: testPasswordHash,
      username: u.email.split('@')[0],
      userID: `user-${i}`,
      groups: u.groups,
      ...(u.emailVerified === false ? { emailVerified: false } : {}),
    })),
  };
  // JSON is YAML: Dex reads it as its config file.
  const configFile = join(dir, 'config.yaml');
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  const child: ChildProcess = spawn(dexBinary, ['serve', configFile], { stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: process.env.PATH, DEX_SESSIONS_ENABLED: 'true' } });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-8000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      'Dex to answer its discovery document',
      async () => {
        if (child.exitCode !== null) throw new Error(`dex exited ${child.exitCode}: ${stderr}`);
        const res = await fetch(`${issuer}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(2000) });
        return res.ok ? true : undefined;
      },
      30_000,
      100,
    );
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    issuer,
    env: {
      OIDC_ISSUER: issuer,
      OIDC_CLIENT_ID: consoleClient.id,
      OIDC_CLIENT_SECRET: consoleClient.secret,
      OIDC_REDIRECT_URL: `${options.apiUrl}/auth/callback`,
      OIDC_ROLES: JSON.stringify(testRoles),
      OIDC_CLI_CLIENT_ID: cliClient.id,
    },
    async passwordTokens(user, client = consoleClient) {
      const body = new URLSearchParams({ grant_type: 'password', username: user.email, password: testPassword, scope: 'openid email profile groups offline_access', client_id: client.id });
      const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
      if (client.secret) headers.authorization = `Basic ${Buffer.from(`${client.id}:${client.secret}`).toString('base64')}`;
      const res = await fetch(`${issuer}/token`, { method: 'POST', headers, body, signal: AbortSignal.timeout(10_000) });
      const text = await res.text();
      if (!res.ok) throw new Error(`Dex refused the password grant for ${user.email}: ${res.status} ${text}`);
      return JSON.parse(text) as { id_token: string; access_token: string; refresh_token?: string };
    },
    stop,
  };
}

/** The value of `name` among a response's Set-Cookie headers. */
export function setCookie(res: Response, name: string): string | undefined {
  for (const line of res.headers.getSetCookie()) {
    const [pair] = line.split(';');
    const i = pair!.indexOf('=');
    if (pair!.slice(0, i).trim() === name) return pair!.slice(i + 1);
  }
  return undefined;
}

/**
 * The authorization code flow as a browser walks it, over plain HTTP, for the API tests: pveflow's /auth/login, the
 * provider's own login form (filled and posted), up to the redirect to pveflow's callback, which is returned unvisited
 * with the cookie that binds it to this "browser". The browser tests walk the same pages in Chromium.
 */
export async function walkToCallback(apiUrl: string, user: TestUser): Promise<{ callbackUrl: string; loginCookie: string }> {
  const start = await fetch(`${apiUrl}/auth/login`, { redirect: 'manual' });
  if (start.status !== 302) throw new Error(`/auth/login answered ${start.status}: ${await start.text()}`);
  const loginCookie = setCookie(start, 'pveflow_login');
  if (!loginCookie) throw new Error('/auth/login set no pveflow_login cookie');
  let url = new URL(start.headers.get('location')!);
  let res: Response | undefined;
  for (let hops = 0; hops < 5; hops++) {
    res = await fetch(url, { redirect: 'manual' });
    if (res.status !== 302) break;
    url = new URL(res.headers.get('location')!, url);
  }
  const form = /<form method="post" action="([^"]+)"/.exec((await res!.text()).replace(/&amp;/g, '&'));
  if (!form) throw new Error(`no login form at ${url.href}`);
  const posted = await fetch(new URL(form[1]!, url), { method: 'POST', redirect: 'manual', body: new URLSearchParams({ login: user.email, password: testPassword }) });
  const callbackUrl = posted.headers.get('location');
  if (!callbackUrl?.startsWith(`${apiUrl}/auth/callback`)) throw new Error(`the provider did not send back to pveflow: ${posted.status} ${callbackUrl ?? (await posted.text())}`);
  return { callbackUrl, loginCookie };
}

/**
 * A person confirming a device sign-in at the provider, over plain HTTP: the verification page (its code filled in),
 * then the provider's own login form, up to its "signed in, return to your device" page. Returns that page's text.
 */
export async function confirmDeviceCode(verificationUrl: string, user: TestUser): Promise<string> {
  let url = new URL(verificationUrl);
  let init: RequestInit = {};
  for (let step = 0; step < 15; step++) {
    const res = await fetch(url, { ...init, redirect: 'manual' });
    if (res.status >= 300 && res.status < 400) {
      url = new URL(res.headers.get('location')!, url);
      init = {};
      continue;
    }
    const html = (await res.text()).replace(/&amp;/g, '&');
    if (res.status !== 200)
      throw new Error(
        `the provider answered ${res.status} at ${url.href}: ${html
          .replace(/<head>[\s\S]*<\/head>/, '')
          .replace(/\s+/g, ' ')
          .slice(0, 800)}`,
      );
    const form = /<form method="post" action="([^"]+)"/.exec(html);
    if (!form) return html;
    const userCode = /name="user_code"[^>]*value="([^"]+)"/.exec(html)?.[1];
    const fields: Record<string, string> = userCode ? { user_code: userCode } : { login: user.email, password: testPassword };
    url = new URL(form[1]!, url);
    init = { method: 'POST', body: new URLSearchParams(fields) };
  }
  throw new Error('the device sign-in did not finish in 15 steps');
}

/**
 * A person following the URL `pveflow login --loopback` printed, over plain HTTP: the provider's own login form
 * (filled and posted), up to its redirect back to the CLI's listener on 127.0.0.1, which is returned unvisited.
 */
export async function walkToLoopback(authorizationUrl: string, user: TestUser, redirectUri: string): Promise<string> {
  let url = new URL(authorizationUrl);
  let init: RequestInit = {};
  for (let step = 0; step < 10; step++) {
    const res = await fetch(url, { ...init, redirect: 'manual' });
    if (res.status >= 300 && res.status < 400) {
      const location = new URL(res.headers.get('location')!, url);
      if (location.href.startsWith(redirectUri)) return location.href;
      url = location;
      init = {};
      continue;
    }
    const html = (await res.text()).replace(/&amp;/g, '&');
    const form = /<form method="post" action="([^"]+)"/.exec(html);
    if (res.status !== 200 || !form) throw new Error(`the provider answered ${res.status} at ${url.href} with no login form: ${html.replace(/\s+/g, ' ').slice(0, 800)}`);
    url = new URL(form[1]!, url);
    init = { method: 'POST', body: new URLSearchParams({ login: user.email, password: testPassword }) };
  }
  throw new Error('the provider did not send back to the CLI in 10 steps');
}
