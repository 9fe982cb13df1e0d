import { failureMessage } from '../failureMessage';
import { patched, proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { createActivities } from '../../activities';
import type { RevealedCredentials } from '../../contracts/messages';
import type { SealedCredentials } from '../../domain/guestCredentials';
import { revealRefetchMinutesOf } from '../../domain/requestPolicyRules';
import { localNotedCall, notedCall } from '../activityOptions';
import { PATCHES } from '../patches';
import { note } from './timeline';
import type { VmRequest } from './request';

/**
 * Custody of the guest's logins: taken from the build, handed to one consultant (who may fetch them again for a short
 * window, REQUEST_REVEAL_REFETCH_MIN, in case the answer was lost in transit), dropped when the window closes or the VM
 * goes. The key they are sealed under is destroyed then: after that no history holds them readable.
 */
const keys = proxyActivities<ReturnType<typeof createActivities>>(notedCall);
/** The key's shredding is one quick, idempotent call: a local activity, whose marker shares its task's Action. */
const localKeys = proxyLocalActivities<ReturnType<typeof createActivities>>(localNotedCall);

/** A build's logins, held until revealed; the record says only that they are waiting. */
export function keepCredentials(state: VmRequest, credentials: SealedCredentials | undefined): void {
  state.credentials = credentials;
  state.record.credentials = { available: credentials !== undefined };
}

/** Why `by` may not take the logins now (the lifecycle decides the status; this, who and whether they are there). */
export function revealRefusal({ serial, record, credentials }: VmRequest, by: unknown): string | undefined {
  if (!record.request.consultants.some((c) => sameConsultant(c, by))) {
    return `the credentials of ${serial} are for its consultants only (${record.request.consultants.join(', ')})`;
  }
  const taken = record.credentials;
  if (taken?.revealedTo) {
    // Within the window the one who took them may fetch them again; they are held only while it is open.
    if (credentials && sameConsultant(taken.revealedTo, by)) return undefined;
    const shredded = taken.refetchUntil ? `; they could be fetched again by ${taken.revealedTo} until ${taken.refetchUntil} and have been shredded since` : '';
    return `the credentials of ${serial} were already revealed to ${taken.revealedTo} at ${taken.revealedAt}${shredded}`;
  }
  if (!credentials) return `request ${serial} has no VM with credentials yet (it is ${record.status})`;
  return undefined;
}

const sameConsultant = (a: string, b: unknown) => a.toLowerCase() === String(b).toLowerCase();

/**
 * Hands the logins over, the taker on the timeline. With a re-fetch window the request keeps them sealed until it
 * closes (the lease shreds them then, shredRefetchable); without one (or before the window existed) they are forgotten
 * in the same step and their key shredded before the answer.
 */
export async function revealCredentials(state: VmRequest, by: string): Promise<RevealedCredentials> {
  const revealed = state.credentials!;
  const taken = state.record.credentials;
  if (taken?.revealedTo && taken.revealedAt) {
    // The same consultant again within the window (the validator allowed no one else): the same logins, the same handover.
    note(state, `guest credentials fetched again by ${by} (re-fetch window until ${taken.refetchUntil})`, by);
    return { ...revealed, revealedTo: taken.revealedTo, revealedAt: taken.revealedAt, ...(taken.refetchUntil ? { refetchUntil: taken.refetchUntil } : {}) };
  }
  const revealedAt = new Date().toISOString();
  const minutes = revealRefetchMinutesOf(state.policy);
  if (minutes > 0 && patched(PATCHES.revealRefetchWindow)) {
    const refetchUntil = new Date(Date.parse(revealedAt) + minutes * 60_000).toISOString();
    state.record.credentials = { available: false, revealedTo: by, revealedAt, refetchUntil };
    note(state, `guest credentials revealed to ${by}; ${by} may fetch them again until ${refetchUntil}, then they are shredded`, by);
    return { ...revealed, revealedTo: by, revealedAt, refetchUntil };
  }
  state.credentials = undefined;
  state.record.credentials = { available: false, revealedTo: by, revealedAt };
  note(state, `guest credentials revealed to ${by}`, by);
  // The API read the key before it asked: shredded before the answer, no one after it can open any copy.
  await shredCredentials(state);
  return { ...revealed, revealedTo: by, revealedAt };
}

/** When the revealed logins the request still holds for a re-fetch are to be shredded (ms), if it holds any. */
export function refetchClosesAt({ credentials, record }: VmRequest): number | undefined {
  const until = record.credentials?.refetchUntil;
  return credentials && until ? Date.parse(until) : undefined;
}

/** The re-fetch window closed: the logins are dropped and their key destroyed; no one can open any copy after this. */
export async function shredRefetchable(state: VmRequest): Promise<void> {
  state.credentials = undefined;
  note(state, `the re-fetch window of the guest credentials closed: shredded`);
  await shredCredentials(state);
}

/** Logins of a VM that is gone are worth nothing to anyone: drop them. */
export function forgetCredentials(state: VmRequest): void {
  state.credentials = undefined;
  if (state.record.credentials) state.record.credentials.available = false;
}

/** Destroys the request's credential key; a failure is noted for an operator, never fatal to the request. */
export async function shredCredentials(state: VmRequest): Promise<void> {
  const destroyKey = patched(PATCHES.shredsInWorkflowTask) ? localKeys.destroyCredentialKey : keys.destroyCredentialKey;
  await destroyKey({ serial: state.serial }).catch((err: Error) => {
    note(state, `the guest credentials' key could not be destroyed (${failureMessage(err)}): delete ${state.serial}.key.json from CREDENTIAL_KEYS_DIR`);
  });
}
