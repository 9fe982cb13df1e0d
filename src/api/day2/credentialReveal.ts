import type { Client } from '@temporalio/client';
import { CredentialKeys } from '../../credentials/credentialKeys';
import type { GuestCredentials } from '../../domain/guestCredentials';
import { revealCredentialsUpdate } from '../../contracts/messages';

/** The request handed its sealed logins over, but this API has no key to open them: a store not shared with the workers. */
export class CredentialsShredded extends Error {}

/**
 * The reveal of a request's guest logins, for `by` (a consultant's email): the first, or the same consultant's again
 * within the re-fetch window (REQUEST_REVEAL_REFETCH_MIN; an answer lost in transit). The key is read first, because
 * the request destroys it once the window closes (crypto-shredding; at once when there is none): the answer it gives is
 * sealed and only a process that read the key before can open it. The clear logins live only in this call's memory and
 * the HTTP answer.
 */
export async function revealCredentials(
  client: Client,
  keys: CredentialKeys,
  serial: string,
  workflowId: string,
  by: string,
  withDeadline: <R>(fn: () => Promise<R>) => Promise<R>,
): Promise<GuestCredentials & { revealedTo: string; revealedAt: string; refetchUntil?: string }> {
  const key = await keys.read(serial);
  // Asked even without a key: the request's refusal (not a consultant, already revealed to whom) says more.
  const sealed = await withDeadline(() => client.workflow.getHandle(workflowId).executeUpdate(revealCredentialsUpdate, { args: [{ by }] }));
  if (!key || key.keyId !== sealed.keyId) {
    throw new CredentialsShredded(`the guest credentials of ${serial} cannot be opened: their key is not in CREDENTIAL_KEYS_DIR (${keys.dir}) of this API; check that the API and the workers share it`);
  }
  return { ...CredentialKeys.open(serial, key, sealed), revealedTo: sealed.revealedTo, revealedAt: sealed.revealedAt, ...(sealed.refetchUntil ? { refetchUntil: sealed.refetchUntil } : {}) };
}
