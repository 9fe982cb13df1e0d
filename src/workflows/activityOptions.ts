import { ActivityCancellationType, type ActivityOptions, type LocalActivityOptions } from '@temporalio/workflow';
import { CLUSTER_READ_BOUND_MS } from '../contracts/types';
import { nonRetryableErrorTypes } from '../errors';

/** Named presets: each activity call states which kind of work it is. */

/**
 * A few quick API calls (Proxmox, NetBird, SFTP); NetBird's client may ride out a 429 storm for ~50 s inside one.
 * A cancelled build waits for a running call to finish: an undo must never run before what it undoes was made.
 */
export const apiCall = {
  startToCloseTimeout: '2 minutes',
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 8, nonRetryableErrorTypes },
} as const satisfies ActivityOptions;

/**
 * The same quick calls as local activities: run by the worker that runs the workflow, inside its workflow task, and
 * recorded as one marker each. No task queue round trip and no six history events per call: what a build spends on
 * Temporal itself, not on Proxmox or NetBird. For calls that neither heartbeat nor wait on a Proxmox task, take
 * well under a second, and are safe to run again from attempt 1 (a workflow task retried after a worker crash runs its
 * unrecorded local activities anew); a retry past a minute waits on a durable timer, like an activity's would.
 */
export const localApiCall = {
  startToCloseTimeout: apiCall.startToCloseTimeout,
  cancellationType: apiCall.cancellationType,
  localRetryThreshold: '1 minute',
  retry: apiCall.retry,
} as const satisfies LocalActivityOptions;

/** Starts a Proxmox task and waits on its UPID, heartbeating; a crashed worker is noticed within the heartbeat timeout. */
export const proxmoxTask = {
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '30 seconds',
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 10, nonRetryableErrorTypes },
} as const satisfies ActivityOptions;

/** Bounded waits (guest agent IP, NetBird peer): the activity enforces its own deadline and says what it last saw. */
export const boundedWait = {
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '30 seconds',
  cancellationType: ActivityCancellationType.TRY_CANCEL,
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 5, nonRetryableErrorTypes },
} as const satisfies ActivityOptions;

/** Undo and cleanup: retried longer, because what they leave behind costs the operator. */
export const cleanup = {
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '30 seconds',
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 12, nonRetryableErrorTypes },
} as const satisfies ActivityOptions;

/** A call whose failure is noted, never fatal (a lease notice, a credential key destroyed): fewer attempts, then the request carries on and says so. */
export const notedCall = { ...apiCall, retry: { ...apiCall.retry, maximumAttempts: 5 } } as const satisfies ActivityOptions;

/** The same, as a local activity: for a step that is only a local file or key store call (the credential key's shredding). */
export const localNotedCall = { ...localApiCall, retry: notedCall.retry } as const satisfies LocalActivityOptions;

/** The cluster sync's reads of the whole cluster: longer per call, few attempts (the next sync looks again). */
export const clusterRead = { ...apiCall, startToCloseTimeout: CLUSTER_READ_BOUND_MS, retry: { ...apiCall.retry, maximumAttempts: 3 } } as const satisfies ActivityOptions;

/** The completion's Proxmox tasks: bounded tighter than a build's, so that a stuck one is reported as left behind sooner. */
export const completionTask = { ...proxmoxTask, startToCloseTimeout: '10 minutes' } as const satisfies ActivityOptions;

/** An image's download onto a node's storage: a Proxmox task that may run for hours; its heartbeat still notices a dead worker within 30 s. */
export const imageDownload = { ...proxmoxTask, startToCloseTimeout: '6 hours' } as const satisfies ActivityOptions;
