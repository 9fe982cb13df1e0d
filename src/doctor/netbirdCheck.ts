import type { NetbirdClient } from '../clients/netbird';
import { NetbirdApiError } from '../clients/netbird/NetbirdApiError';
import { fail, pass, type Finding } from './finding';

/**
 * The NetBird personal access token: accepted, and its user may manage what a build creates (listing users is
 * the least a build needs, to find the consultants; NetBird refuses it to non-admin users).
 */
export async function checkNetbird(netbird: NetbirdClient): Promise<Finding> {
  const check = 'netbird.token';
  try {
    const users = await netbird.listUsers();
    return pass(check, `the token is accepted and sees ${users.length} user(s)`);
  } catch (err) {
    const status = err instanceof NetbirdApiError ? err.status : undefined;
    const message = (err as Error).message;
    if (status === 401) {
      return fail(check, `NetBird rejects the token: ${message}`, 'create a new personal access token (NetBird dashboard → Team → Service Users, or your user → Personal Access Tokens) and set NETBIRD_TOKEN');
    }
    if (status === 403) {
      return fail(check, `the token's user may not manage the account: ${message}`, 'use a token of an admin user or a service user with the admin role');
    }
    return fail(check, `cannot reach NetBird: ${message}`, 'check NETBIRD_API_URL and NETBIRD_CA_FILE');
  }
}
