import { deviceNames } from './deviceRequest';

/**
 * The NetBird objects one request can own, named the way an operator finds them in NetBird's dashboard. Pure (no
 * Temporal, no I/O): the completion workflow uses the list as the request's leftovers when NetBird stays down through
 * every retry, and `revokeVpnAccess` uses the same words for what it could not remove, so the two always agree.
 */
export function vpnObjectNames(serial: string, name: string) {
  const names = deviceNames(serial, name);
  return {
    peer: `NetBird peer ${names.hostname}`,
    policy: `NetBird policy ${names.policy}`,
    setupKey: `NetBird setup key ${names.setupKey}`,
    deviceGroup: `NetBird group ${names.deviceGroup}`,
    consultantsGroup: `NetBird group ${names.consultantsGroup}`,
    membership: `NetBird group ${names.consultantsGroup} in the consultants' users' auto_groups`,
    /** One consultant's share of `membership`, named by their NetBird user. */
    membershipOf: (email: string) => `NetBird group ${names.consultantsGroup} in the auto_groups of NetBird user ${email}`,
  };
}

/** Every NetBird object a request can have, in words, in the order `revokeVpnAccess` removes them. */
export function vpnObjectsOf(serial: string, name: string): string[] {
  const o = vpnObjectNames(serial, name);
  return [o.peer, o.policy, o.setupKey, o.membership, o.consultantsGroup, o.deviceGroup];
}
