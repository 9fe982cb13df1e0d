import type { Principal } from './apiKeys';
import { roleRank, type OidcSettings } from './oidcSettings';

/** Why a person signed in at the provider may still not use pveflow, in words for them. */
export type Identity = { principal: Principal } | { refusal: string };

/**
 * Who a person is, from the claims the provider signed: their role and org from the groups it names (through
 * OIDC_ROLES), their e-mail only when the provider says it verified it. A plain rule, no I/O:
 *
 * | groups map to                         | e-mail verified | answer                                   |
 * |---------------------------------------|-----------------|------------------------------------------|
 * | nothing                               | either          | refused: no role in pveflow              |
 * | operator (among others)               | either          | operator, across all orgs                |
 * | admin or requester in one org         | yes             | the highest of those roles, in that org  |
 * | admin in one org                      | no              | admin without an e-mail                  |
 * | requester only                        | no              | refused: a requester files as their e-mail |
 * | roles in two orgs (no operator)       | either          | refused: ambiguous, fix the groups       |
 */
export function identityFromClaims(claims: Record<string, unknown>, settings: Pick<OidcSettings, 'roles' | 'groupsClaim' | 'emailVerifiedClaim'>): Identity {
  const { roles, groupsClaim, emailVerifiedClaim } = settings;
  const sub = typeof claims.sub === 'string' ? claims.sub : undefined;
  if (!sub) return { refusal: 'the provider named no subject (sub) for this sign-in' };
  const rawGroups = claims[groupsClaim];
  const groups = Array.isArray(rawGroups) ? rawGroups.filter((g): g is string => typeof g === 'string') : typeof rawGroups === 'string' ? [rawGroups] : [];
  const email = claims[emailVerifiedClaim] === true && typeof claims.email === 'string' && claims.email.includes('@') ? claims.email.toLowerCase() : undefined;
  const who = email ?? (typeof claims.email === 'string' ? claims.email : sub);
  const grants = groups.flatMap((g) => (Object.hasOwn(roles, g) ? [roles[g]!] : []));
  if (!grants.length) {
    return {
      refusal: `${who} has no role in pveflow: none of their groups (${groups.length ? groups.join(', ') : `no "${groupsClaim}" claim`}) is mapped to requester, admin or operator. Ask an administrator to add you to one.`,
    };
  }
  const id = email ?? `oidc:${sub}`;
  if (grants.some((g) => g.role === 'operator')) return { principal: { role: 'operator', id, ...(email ? { email } : {}) } };
  const orgs = [...new Set(grants.map((g) => (g.role === 'operator' ? '' : g.org)))];
  if (orgs.length > 1) return { refusal: `${who} has roles in several organisations (${orgs.join(', ')}); pveflow needs exactly one. Ask an administrator to fix the groups.` };
  const org = orgs[0]!;
  const best = grants.reduce((a, b) => (roleRank[b.role] > roleRank[a.role] ? b : a));
  if (best.role === 'admin') return { principal: { role: 'admin', id, org, ...(email ? { email } : {}) } };
  if (!email) return { refusal: `the provider has not verified the e-mail of ${who}: a requester files requests as their e-mail, so it must be verified first` };
  return { principal: { role: 'requester', id, org, email } };
}
