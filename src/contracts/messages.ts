import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { SealedCredentials } from '../domain/guestCredentials';
import type { BuildPhase, BuildState, BuildTask, RequestRecord, VmDrift } from './types';
import type { MigrateArgs, OperationResult, PowerArgs, ReconfigureArgs, SnapshotArgs } from './vmOperations';

/**
 * The messages of pveflow's workflows, defined once with stable names. The API imports these (and workflow types),
 * never workflow code. The update validators that check these arguments are in `updateArguments.ts`.
 */

/** Who acts on a request (an admin, a consultant, an operator in Temporal UI), and why. */
export interface Actor {
  by: string;
  note?: string;
}

export interface Extension extends Actor {
  /** ISO 8601 date-time with an offset (`Z` or `+hh:mm`). */
  newEnd: string;
}

export interface Rejection {
  by: string;
  reason: string;
}

/**
 * Answer of every request-changing update: the request as the action left it, once it took effect (not as it was
 * before): `Cancelling` with the build being cancelled, `Approved` with the build it queued (or when it will be
 * built), the new build of a rebuild, `Completing` once the cleanup started.
 */
export interface UpdateResult {
  serial: string;
  status: RequestRecord['status'];
  /** The build the action concerns: the one it queued, started or is cancelling, else the latest. */
  build?: { attempt: number; state: BuildState };
  /** Approved before the period's start: the build starts then. */
  buildsAt?: string;
  /** An extension: the new end of the lease. */
  periodEnd?: string;
}

export const approveUpdate = defineUpdate<UpdateResult, [Actor]>('approve');
export const rejectUpdate = defineUpdate<UpdateResult, [Rejection]>('reject');
export const rebuildUpdate = defineUpdate<UpdateResult, [Actor]>('rebuild');
export const completeUpdate = defineUpdate<UpdateResult, [Actor]>('complete');
/** Moves the end of the lease (validated: after now and the start, within the policy's maximum lease). */
export const extendUpdate = defineUpdate<UpdateResult, [Extension]>('extend');
/** Cancels the running (or not yet started) build; its undos remove what it made. Same as cancelling vm-build-* in Temporal UI. */
export const cancelUpdate = defineUpdate<UpdateResult, [Actor]>('cancel');

export const statusQuery = defineQuery<RequestRecord>('status');
export const buildStatusQuery = defineQuery<BuildTask>('buildStatus');

/** Internal: a build tells its request which phase it entered. */
export const buildPhaseSignal = defineSignal<[BuildPhase]>('buildPhase');
/**
 * Hands the guest's generated logins to one of the request's consultants, once: the request forgets them in the same
 * step, destroys the key they are sealed under before it answers, and its timeline records who took them. The answer
 * is sealed: the API opens it with the key it read before asking. Refused for anyone who is not a consultant.
 */
export const revealCredentialsUpdate = defineUpdate<RevealedCredentials, [{ by: string }]>('revealCredentials');

/**
 * The logins, sealed, and what handing them over did: to whom, when, and until when the same consultant may fetch them
 * again (an answer lost in transit); after that, or when absent, the request holds them no more.
 */
export interface RevealedCredentials extends SealedCredentials {
  revealedTo: string;
  revealedAt: string;
  refetchUntil?: string;
}

/** From clusterSync: what changed about the request's VM in the cluster. */
export const vmDriftSignal = defineSignal<[VmDrift]>('vmDrift');
/** Internal: a cancelled build's final record (log, leftovers), sent before it ends as cancelled. */
export const buildReportSignal = defineSignal<[BuildTask]>('buildReport');

/*
 * Day-2 operations on the request's VM (src/contracts/vmOperations.ts): each answers once the operation has ended,
 * with what it did; refused (with the reason) when the request's state, the caller's role or a limit does not allow
 * it, or while another one runs. The same `id` twice does one thing: the second asks for the first's answer.
 */
export const powerUpdate = defineUpdate<OperationResult, [PowerArgs]>('power');
export const reconfigureUpdate = defineUpdate<OperationResult, [ReconfigureArgs]>('reconfigure');
export const snapshotUpdate = defineUpdate<OperationResult, [SnapshotArgs]>('snapshot');
export const migrateUpdate = defineUpdate<OperationResult, [MigrateArgs]>('migrate');
