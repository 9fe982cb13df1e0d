import { z } from 'zod';
import { ConfigError, type Config } from '../../config';
import type { Role } from './apiKeys';

/** One group the provider may name, and what it makes its members: a role, in an org unless operator. */
const roleGrant = z.discriminatedUnion('role', [
  z.strictObject({ role: z.literal('requester'), org: z.string().min(1).max(64) }),
  z.strictObject({ role: z.literal('admin'), org: z.string().min(1).max(64) }),
  z.strictObject({ role: z.literal('operator') }),
]);
export type RoleGrant = z.infer<typeof roleGrant>;

const roleMap = z.record(z.string().min(1), roleGrant).refine((m) => Object.keys(m).length > 0, { message: 'name at least one group' });

export interface SessionTimes {
  idleMs: number;
  maxMs: number;
}

/** Sign-in through an OpenID provider, checked as a whole at start-up. */
export interface OidcSettings {
  issuer: URL;
  clientId: string;
  clientSecret?: string;
  redirectUrl: URL;
  scopes: string;
  groupsClaim: string;
  /** The boolean claim that says the provider verified the e-mail. */
  emailVerifiedClaim: string;
  /** Group name → what it grants. */
  roles: Record<string, RoleGrant>;
  /** The audiences a bearer token may carry. */
  audiences: string[];
  cliClientId?: string;
  /** Plain http to the provider: only where the issuer is this machine (a test's or a developer's own provider). */
  allowHttp: boolean;
  /** Secure cookies everywhere but on a loopback address over http. */
  secureCookies: boolean;
}

const loopback = (u: URL) => ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname);

/**
 * The OIDC_* settings, or undefined when no issuer is configured. Every mistake is named with its variable: a
 * half-configured sign-in stops the start rather than showing people a button that cannot work.
 */
export function oidcSettingsFrom(config: Config): OidcSettings | undefined {
  if (!config.OIDC_ISSUER) {
    const stray = (['OIDC_CLIENT_ID', 'OIDC_CLIENT_SECRET', 'OIDC_REDIRECT_URL', 'OIDC_ROLES', 'OIDC_CLI_CLIENT_ID'] as const).filter((k) => config[k] !== undefined);
    if (stray.length) throw new ConfigError(`${stray.join(', ')} set without OIDC_ISSUER: set the provider's issuer URL too, or unset them`);
    return undefined;
  }
  const problems: string[] = [];
  const issuer = new URL(config.OIDC_ISSUER);
  if (issuer.protocol !== 'https:' && !loopback(issuer)) problems.push(`OIDC_ISSUER: must be https (plain http only for a provider on this machine), not ${issuer.protocol}`);
  if (!config.OIDC_CLIENT_ID) problems.push('OIDC_CLIENT_ID: required with OIDC_ISSUER (the client the provider registered for pveflow)');
  let redirectUrl: URL | undefined;
  if (!config.OIDC_REDIRECT_URL) problems.push('OIDC_REDIRECT_URL: required with OIDC_ISSUER (https://<pveflow>/auth/callback, as registered at the provider)');
  else {
    redirectUrl = new URL(config.OIDC_REDIRECT_URL);
    if (redirectUrl.pathname !== '/auth/callback') problems.push(`OIDC_REDIRECT_URL: its path must be /auth/callback, not ${redirectUrl.pathname}`);
    if (redirectUrl.protocol !== 'https:' && !loopback(redirectUrl)) problems.push('OIDC_REDIRECT_URL: must be https outside this machine (session cookies are Secure)');
  }
  let roles: Record<string, RoleGrant> = {};
  if (!config.OIDC_ROLES) problems.push('OIDC_ROLES: required with OIDC_ISSUER, e.g. {"acme-admins": {"role": "admin", "org": "Acme Corp"}, "ops": {"role": "operator"}}');
  else {
    let value: unknown;
    try {
      value = JSON.parse(config.OIDC_ROLES);
    } catch {
      problems.push('OIDC_ROLES: not valid JSON');
    }
    if (value !== undefined) {
      const parsed = roleMap.safeParse(value);
      if (parsed.success) roles = parsed.data;
      else problems.push(...parsed.error.issues.map((i) => `OIDC_ROLES: ${i.path.join('.') || '(top)'}: ${i.message}`));
    }
  }
  if (problems.length || !redirectUrl || !config.OIDC_CLIENT_ID) throw new ConfigError(`invalid sign-in configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  const audiences = config.OIDC_AUDIENCES
    ? config.OIDC_AUDIENCES.split(',')
        .map((a) => a.trim())
        .filter(Boolean)
    : [config.OIDC_CLIENT_ID, ...(config.OIDC_CLI_CLIENT_ID ? [config.OIDC_CLI_CLIENT_ID] : [])];
  return {
    issuer,
    clientId: config.OIDC_CLIENT_ID,
    ...(config.OIDC_CLIENT_SECRET ? { clientSecret: config.OIDC_CLIENT_SECRET } : {}),
    redirectUrl,
    scopes: config.OIDC_SCOPES,
    groupsClaim: config.OIDC_GROUPS_CLAIM,
    emailVerifiedClaim: config.OIDC_EMAIL_VERIFIED_CLAIM,
    roles,
    audiences,
    ...(config.OIDC_CLI_CLIENT_ID ? { cliClientId: config.OIDC_CLI_CLIENT_ID } : {}),
    allowHttp: issuer.protocol === 'http:',
    secureCookies: redirectUrl.protocol === 'https:' || !loopback(redirectUrl),
  };
}

export function sessionTimesFrom(config: Config): SessionTimes {
  return { idleMs: config.SESSION_IDLE_MINUTES * 60_000, maxMs: config.SESSION_MAX_HOURS * 3_600_000 };
}

/** Where console sessions are kept (SESSION_DIR, else under DATA_DIR): every API process must name the same one. */
export function sessionDir(config: Pick<Config, 'SESSION_DIR' | 'DATA_DIR'>): string {
  return config.SESSION_DIR ?? `${config.DATA_DIR.replace(/\/+$/, '')}/sessions`;
}

export const roleRank: Record<Role, number> = { requester: 1, admin: 2, operator: 3 };
