import { requestStatuses, type RequestStatus } from '../contracts/types';

/**
 * What can happen to a request in each of its states: for every status × action, whether the action is allowed (or
 * why not, in the words an operator reads in the 409) and the status it leads to. Plain code, no Temporal: the
 * vmRequest workflow asks it (its update validators and its runbook's transitions), test/requestLifecycle.test.ts
 * checks it cell by cell.
 *
 * Adding an action (a day-2 operation: power, reconfigure, snapshot, migrate): add its name to `REQUEST_ACTIONS` and
 * its row to `RULES` (the states it is allowed in, and the status it leads to, usually `stay`); TypeScript refuses the
 * table until the row exists. Then add the row to the expected table in the test. A state added to `RequestStatus`
 * needs its `WHY_NOT` line, and each rule decides whether it is allowed there.
 */

/** What a person (or the policy) asks of a request: each one an Update on vmRequest. */
export const REQUEST_ACTIONS = ['approve', 'reject', 'rebuild', 'complete', 'cancel', 'extend', 'revealCredentials', 'power', 'reconfigure', 'snapshot', 'migrate'] as const;
export type RequestAction = (typeof REQUEST_ACTIONS)[number];

/** What happens to a request on its own (its build, its VM in the cluster, its clock): moves, never refused by a person. */
export const REQUEST_EVENTS = [
  'expired',
  'buildStarted',
  'buildProvisioning',
  'buildConfiguring',
  'buildSucceeded',
  'buildFailed',
  'buildCancelled',
  'vmVanished',
  'requestCancelled',
  'cleanupStarted',
  'cleanedUp',
  'cleanedUpAfterCancel',
] as const;
export type RequestEvent = (typeof REQUEST_EVENTS)[number];

export const REQUEST_STATUSES: readonly RequestStatus[] = requestStatuses;

/** A build is running: what the request says while its build workflow works. */
export const BUILDING: readonly RequestStatus[] = ['Imaging', 'Provisioning', 'Configuring'];
const ENDED: readonly RequestStatus[] = ['Rejected', 'Expired', 'Completed'];

/** The status stays as it is (an extension, a reveal, a phase reported while cancelling). */
const stay = (status: RequestStatus) => status;

interface Rule {
  allowedIn: readonly RequestStatus[];
  /** The status once the action (or event) took effect. */
  next: (from: RequestStatus) => RequestStatus;
}

const RULES: Record<RequestAction | RequestEvent, Rule> = {
  approve: { allowedIn: ['Pending'], next: () => 'Approved' },
  reject: { allowedIn: ['Pending'], next: () => 'Rejected' },
  // Approved again: the runbook starts the new build (Imaging) in the same workflow task.
  rebuild: { allowedIn: ['Failed', 'Cancelled'], next: () => 'Approved' },
  complete: { allowedIn: ['Approved', 'Fulfilled', 'Failed', 'Cancelled'], next: () => 'Completing' },
  // A build not started yet is simply not built; a running one says Cancelling until its undos are done.
  cancel: { allowedIn: ['Approved', ...BUILDING], next: (from) => (from === 'Approved' ? 'Cancelled' : 'Cancelling') },
  extend: { allowedIn: ['Pending', 'Approved', ...BUILDING, 'Fulfilled'], next: stay },
  // The logins exist from the build's end until the VM goes; who may take them, and whether they are still there,
  // the workflow's custody of them decides.
  revealCredentials: { allowedIn: ['Fulfilled'], next: stay },
  // Day-2 operations on the built VM (request/operations.ts): the request stays Fulfilled. Who may, one at a time and
  // within which limits, request/operationRules.ts adds.
  power: { allowedIn: ['Fulfilled'], next: stay },
  reconfigure: { allowedIn: ['Fulfilled'], next: stay },
  snapshot: { allowedIn: ['Fulfilled'], next: stay },
  migrate: { allowedIn: ['Fulfilled'], next: stay },

  expired: { allowedIn: ['Pending'], next: () => 'Expired' },
  buildStarted: { allowedIn: ['Approved'], next: () => 'Imaging' },
  // A phase the build entered before it heard of a cancel does not undo Cancelling.
  buildProvisioning: { allowedIn: [...BUILDING, 'Cancelling'], next: (from) => (from === 'Cancelling' ? from : 'Provisioning') },
  buildConfiguring: { allowedIn: [...BUILDING, 'Cancelling'], next: (from) => (from === 'Cancelling' ? from : 'Configuring') },
  buildSucceeded: { allowedIn: [...BUILDING, 'Cancelling'], next: () => 'Fulfilled' },
  buildFailed: { allowedIn: [...BUILDING, 'Cancelling'], next: () => 'Failed' },
  buildCancelled: { allowedIn: ['Approved', ...BUILDING, 'Cancelling'], next: () => 'Cancelled' },
  vmVanished: { allowedIn: ['Fulfilled'], next: () => 'Failed' },
  // The request workflow itself was cancelled (Temporal UI, `temporal workflow cancel`): it cleans up, then ends.
  requestCancelled: { allowedIn: ['Approved', ...BUILDING, 'Cancelling', 'Fulfilled', 'Failed', 'Cancelled'], next: () => 'Cancelled' },
  cleanupStarted: { allowedIn: ['Approved', 'Fulfilled', 'Failed', 'Cancelled'], next: () => 'Completing' },
  cleanedUp: { allowedIn: ['Completing'], next: () => 'Completed' },
  // A request whose build was cancelled (and never rebuilt) ends as Cancelled, not Completed.
  cleanedUpAfterCancel: { allowedIn: ['Completing'], next: () => 'Cancelled' },
};

/** Each status in an operator's words: why most actions make no sense there, and what would. */
const WHY_NOT: Record<RequestStatus, string> = {
  Pending: 'it waits for an approval',
  Approved: 'its build has not started yet',
  Imaging: 'its build is running (cancel it, or wait for it to end)',
  Provisioning: 'its build is running (cancel it, or wait for it to end)',
  Configuring: 'its build is running (cancel it, or wait for it to end)',
  Fulfilled: 'its VM is built and in use (complete the request to remove it)',
  Failed: 'its last build failed (rebuild or complete it)',
  Rejected: 'it was rejected and has ended',
  Expired: 'it expired unapproved and has ended',
  Cancelled: 'its build was cancelled (rebuild or complete it)',
  Cancelling: 'its build is being cancelled and is undoing what it made',
  Completing: 'its VM and access are being removed',
  Completed: 'it has ended',
};

export type Verdict = { allowed: true; next: RequestStatus } | { allowed: false; reason: string };

/** Whether `action` (or an event) may happen to a request that is `status`, and where it leads. */
export function decide(status: RequestStatus, action: RequestAction | RequestEvent): Verdict {
  const rule = RULES[action];
  if (rule.allowedIn.includes(status)) return { allowed: true, next: rule.next(status) };
  return { allowed: false, reason: `${WHY_NOT[status]}; ${action} only when ${rule.allowedIn.join(' or ')}` };
}

/** The refusal an update validator throws: `cannot cancel request VM-7K2Q9: it is Fulfilled — ...`; undefined if allowed. */
export function refusal(serial: string, status: RequestStatus, action: RequestAction): string | undefined {
  const verdict = decide(status, action);
  return verdict.allowed ? undefined : `cannot ${action} request ${serial}: it is ${status} — ${verdict.reason}`;
}

/**
 * The status an action (its validator allowed it) or an event leads to; one the table does not allow there is a bug
 * in the runbook, not a refusal.
 */
export function after(status: RequestStatus, event: RequestAction | RequestEvent): RequestStatus {
  const verdict = decide(status, event);
  if (!verdict.allowed) throw new Error(`request lifecycle: ${event} cannot happen while ${status} (${verdict.reason})`);
  return verdict.next;
}

/** Whether a request in this status is over: no action moves it again. */
export const hasEnded = (status: RequestStatus) => ENDED.includes(status);
