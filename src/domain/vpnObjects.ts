import { deviceNames } from './deviceNames';

/**
 * The NetBird objects one request can own, named the way an operator finds them in NetBird's dashboard. Pure (no
 * Temporal, no I/O): the completion workflow uses the list as the request's leftovers when NetBird stays down through
 * every retry, and `revokeVpnAccess` uses the same words for what it could not remove, so the two always agree.
 * The consultants' standing groups (`pveflow-consultant-<email>`) are not the request's: they stay.
 */
export function vpnObjectNames(serial: string, name: string) {
  const names = deviceNames(serial, name);
  return {
    peer: `NetBird peer ${names.hostname}`,
    policy: `NetBird policy ${names.policy}`,
    setupKey: `NetBird setup key ${names.setupKey}`,
    deviceGroup: `NetBird group ${names.deviceGroup}`,
    /** Only requests granted before the standing groups had a `consultants-<id>` group and its memberships. */
    consultantsGroup: `NetBird group ${names.consultantsGroup}`,
    membership: `NetBird group ${names.consultantsGroup} in the consultants' users' auto_groups`,
    /** One consultant's share of `membership`, named by their NetBird user. */
    membershipOf: (email: string) => `NetBird group ${names.consultantsGroup} in the auto_groups of NetBird user ${email}`,
  };
}

/**
 * Every NetBird object a request granted today can have, in words, in the order `revokeVpnAccess` removes them. (A
 * request granted before the standing groups may also have `consultantsGroup` and its `membership`; the revoke names
 * them when it finds them.)
 */
export function vpnObjectsOf(serial: string, name: string): string[] {
  const o = vpnObjectNames(serial, name);
  return [o.peer, o.policy, o.setupKey, o.deviceGroup];
}
