import { failureMessage } from '../failureMessage';
import { proxyActivities } from '@temporalio/workflow';
import type { createActivities } from '../../activities';
import type { RevealedCredentials } from '../../contracts/messages';
import type { SealedCredentials } from '../../domain/guestCredentials';
import { notedCall } from '../activityOptions';
import { note } from './timeline';
import type { VmRequest } from './request';

/**
 * Custody of the guest's logins: taken from the build, handed once to one consultant, dropped when the VM goes. The
 * key they are sealed under is destroyed on either: after that no history holds them readable.
 */
const keys = proxyActivities<ReturnType<typeof createActivities>>(notedCall);

/** A build's logins, held until revealed; the record says only that they are waiting. */
export function keepCredentials(state: VmRequest, credentials: SealedCredentials | undefined): void {
  state.credentials = credentials;
  state.record.credentials = { available: credentials !== undefined };
}

/** Why `by` may not take the logins now (the lifecycle decides the status; this, who and whether they are there). */
export function revealRefusal({ serial, record, credentials }: VmRequest, by: unknown): string | undefined {
  if (!record.request.consultants.some((c) => c.toLowerCase() === String(by).toLowerCase())) {
    return `the credentials of ${serial} are for its consultants only (${record.request.consultants.join(', ')})`;
  }
  if (record.credentials?.revealedTo) {
    return `the credentials of ${serial} were already revealed to ${record.credentials.revealedTo} at ${record.credentials.revealedAt}`;
  }
  if (!credentials) return `request ${serial} has no VM with credentials yet (it is ${record.status})`;
  return undefined;
}

/** Hands the logins over: forgotten in the same step, their key shredded before the answer, the taker on the timeline. */
export async function revealCredentials(state: VmRequest, by: string): Promise<RevealedCredentials> {
  const revealed = state.credentials!;
  state.credentials = undefined;
  const revealedAt = new Date().toISOString();
  state.record.credentials = { available: false, revealedTo: by, revealedAt };
  note(state, `guest credentials revealed to ${by}`, by);
  // The API read the key before it asked: shredded before the answer, no one after it can open any copy.
  await shredCredentials(state);
  return { ...revealed, revealedTo: by, revealedAt };
}

/** Logins of a VM that is gone are worth nothing to anyone: drop them. */
export function forgetCredentials(state: VmRequest): void {
  state.credentials = undefined;
  if (state.record.credentials) state.record.credentials.available = false;
}

/** Destroys the request's credential key; a failure is noted for an operator, never fatal to the request. */
export async function shredCredentials(state: VmRequest): Promise<void> {
  await keys.destroyCredentialKey({ serial: state.serial }).catch((err: Error) => {
    note(state, `the guest credentials' key could not be destroyed (${failureMessage(err)}): delete ${state.serial}.key.json from CREDENTIAL_KEYS_DIR`);
  });
}
