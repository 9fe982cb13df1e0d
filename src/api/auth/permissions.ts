import type { Principal, Role } from './apiKeys';

/**
 * Who may do what. Roles decide the action; orgs decide the scope: a requester or admin works only inside their own
 * org, and a request of another org does not exist for them (404, so that serials cannot be probed). An operator
 * works across all orgs.
 */
export type Action =
  | 'submit'
  | 'list'
  | 'read'
  | 'logs'
  | 'approve'
  | 'reject'
  | 'cancel'
  | 'rebuild'
  | 'extend'
  | 'complete'
  | 'credentials'
  | 'templates'
  | 'images'
  // The image catalogue's changes and imports.
  | 'manage-images'
  // Day-2 operations on a request's VM.
  | 'power'
  | 'reconfigure'
  | 'snapshot'
  | 'migrate';

const everyone: Role[] = ['requester', 'admin', 'operator'];
const deciders: Role[] = ['admin', 'operator'];

export const rolesFor: Record<Action, readonly Role[]> = {
  submit: everyone,
  list: everyone,
  read: everyone,
  logs: everyone,
  extend: everyone,
  complete: everyone,
  // Everyone may ask; the request itself hands them only to its consultants (by the key's email).
  credentials: everyone,
  templates: everyone,
  images: everyone,
  'manage-images': ['operator'],
  approve: deciders,
  reject: deciders,
  cancel: deciders,
  rebuild: deciders,
  power: everyone,
  reconfigure: everyone,
  snapshot: everyone,
  // Where a VM runs is the cluster's business: operators only.
  migrate: ['operator'],
};

/** Why the principal's role may not do `action`, or undefined when it may. */
export function roleRefusal(p: Principal, action: Action): string | undefined {
  if (rolesFor[action].includes(p.role)) return undefined;
  return `${action} needs the role ${rolesFor[action].join(' or ')}; key ${p.id} is a ${p.role}`;
}

/** The org a principal is confined to, or undefined for an operator. */
export function orgOf(p: Principal): string | undefined {
  return p.role === 'operator' ? undefined : p.org;
}

export function mayActIn(p: Principal, org: string): boolean {
  const own = orgOf(p);
  return own === undefined || own === org;
}

/**
 * A requester submits as themselves: the request's `requester` is the key's email (case aside), so the timeline's
 * "requested by" is who actually asked. Admins and operators submit on others' behalf.
 */
export function requesterRefusal(p: Principal, requester: string): string | undefined {
  if (p.role !== 'requester' || p.email.toLowerCase() === requester.toLowerCase()) return undefined;
  return `key ${p.id} is a requester and submits as itself: requester must be ${p.email}, not ${requester}`;
}
