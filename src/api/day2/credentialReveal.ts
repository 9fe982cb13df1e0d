import type { Client } from '@temporalio/client';
import { CredentialKeys } from '../../credentials/credentialKeys';
import type { GuestCredentials } from '../../domain/guestCredentials';
import { revealCredentialsUpdate } from '../../contracts/messages';

/** The request handed its sealed logins over, but this API has no key to open them: a store not shared with the workers. */
export class CredentialsShredded extends Error {}

/**
 * The one reveal of a request's guest logins, for `by` (a consultant's email). The key is read first, because the
 * request destroys it before it answers (crypto-shredding): the answer it gives is sealed and this process is the
 * last that can open it. The clear logins live only in this call's memory and the HTTP answer.
 */
export async function revealCredentials(
  client: Client,
  keys: CredentialKeys,
  serial: string,
  workflowId: string,
  by: string,
  withDeadline: <R>(fn: () => Promise<R>) => Promise<R>,
): Promise<GuestCredentials & { revealedTo: string; revealedAt: string }> {
  const key = await keys.read(serial);
  // Asked even without a key: the request's refusal (not a consultant, already revealed to whom) says more.
  const sealed = await withDeadline(() => client.workflow.getHandle(workflowId).executeUpdate(revealCredentialsUpdate, { args: [{ by }] }));
  if (!key || key.keyId !== sealed.keyId) {
    throw new CredentialsShredded(`the guest credentials of ${serial} cannot be opened: their key is not in CREDENTIAL_KEYS_DIR (${keys.dir}) of this API; check that the API and the workers share it`);
  }
  return { ...CredentialKeys.open(serial, key, sealed), revealedTo: sealed.revealedTo, revealedAt: sealed.revealedAt };
}
