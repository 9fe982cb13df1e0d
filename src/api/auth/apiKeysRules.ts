import type { IssuedKeyRole } from '../../contracts/apiKeyRegistryMessages';
import type { Principal } from './apiKeys';

/**
 * Who may manage which API keys, as a table: operators any key of any org; admins requester and admin keys of their
 * own org (never an operator key: that would let an admin climb out of their org); requesters none.
 */
export const keyRolesIssuableBy: Record<Principal['role'], readonly IssuedKeyRole[]> = {
  operator: ['requester', 'admin', 'operator'],
  admin: ['requester', 'admin'],
  requester: [],
};

/** Why `p` may not list or manage keys at all, or undefined when it may. */
export function keyManagementRefusal(p: Principal): string | undefined {
  if (keyRolesIssuableBy[p.role].length) return undefined;
  const roles = (Object.keys(keyRolesIssuableBy) as Principal['role'][]).filter((r) => keyRolesIssuableBy[r].length);
  return `managing API keys needs the role ${roles.join(' or ')}; key ${p.id} is a ${p.role}`;
}

/** Why `p` may not issue a key of `role` for `org`, or undefined when it may. */
export function keyIssueRefusal(p: Principal, ask: { role: IssuedKeyRole; org?: string }): string | undefined {
  const none = keyManagementRefusal(p);
  if (none) return none;
  if (!keyRolesIssuableBy[p.role].includes(ask.role)) return `key ${p.id} is a ${p.role} and may issue ${keyRolesIssuableBy[p.role].join(' and ')} keys only, not ${ask.role} keys`;
  if (p.role !== 'operator' && ask.org !== p.org) return `key ${p.id} may issue keys only for its own org ${p.org}`;
  return undefined;
}

/** The org whose keys `p` sees and revokes; undefined: every org (an operator). */
export function keyScopeOf(p: Principal): string | undefined {
  return p.role === 'operator' ? undefined : p.org;
}
