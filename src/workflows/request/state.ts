import type { CancellationScope } from '@temporalio/workflow';
import type { SealedCredentials } from '../../domain/guestCredentials';
import { deviceNames } from '../../domain/deviceNames';
import { defaultRequestPolicy } from '../../domain/requestPolicyRules';
import type { RequestPolicy } from '../../domain/requestPolicy';
import type { BuildTask, RequestRecord, RequestStatus, VmRequestInput } from '../../contracts/types';

/** A migration the sync reported whose cloud-init snippet has not followed the VM yet. */
export interface SnippetMove {
  vmid: number;
  from: string;
  to: string;
}

/**
 * Everything one vmRequest run holds. The record is what the `status` query shows and continue-as-new carries over;
 * the rest is what its handlers tell its runbook (what was asked and not done yet) and what never leaves the workflow.
 */
export interface RequestState {
  serial: string;
  policy: RequestPolicy;
  record: RequestRecord;
  /** Actions taken by their handlers and not yet carried out by the runbook. */
  asked: { complete: boolean; rebuild: boolean; cancel: boolean };
  /** The sync found the fulfilled request's VM gone: the lease ends, the request fails. */
  vmVanished: boolean;
  /** Migrations the sync reported; the lease empties the list before any continue-as-new. */
  snippetMoves: SnippetMove[];
  /** The scope the current build runs in: cancelling it cancels the build, which then runs its undos. */
  buildScope?: CancellationScope;
  /** A cancelled build cannot carry its record in its failure: it reports it by signal before it ends. */
  finalBuildReports: Record<number, BuildTask>;
  /**
   * The guest's logins, never in the record (queries would show them), sealed under the request's credential key,
   * which is destroyed once they are revealed or the request ends: after that no history holds them readable.
   */
  credentials?: SealedCredentials;
  /** Set when the completion runbook starts: a `complete` answers once the request is on its way out. */
  cleanupStarted: boolean;
}

/** A new request's state, or a resumed one's (continue-as-new). */
export function requestStateOf(input: VmRequestInput, now: string): RequestState {
  const { serial } = input.request;
  const record: RequestRecord = input.resumed ?? {
    serial,
    request: input.request,
    status: 'Pending',
    device: { hostname: deviceNames(serial, input.request.name).hostname },
    timeline: [{ at: now, event: `submitted by ${input.request.requester}`, by: input.request.requester }],
    leftovers: [],
  };
  return {
    serial,
    policy: input.policy ?? defaultRequestPolicy,
    record,
    asked: { complete: false, rebuild: false, cancel: false },
    vmVanished: false,
    snippetMoves: [],
    finalBuildReports: {},
    credentials: input.resumedCredentials,
    cleanupStarted: false,
  };
}

/**
 * Why the request is on its way out, or undefined while it is not: its completion was asked for, its cleanup has
 * begun, or its lease is over (a fulfilled request whose period has ended, though the runbook may not have woken yet).
 * From that moment it is Completing to every caller: one fact, which every validator asks (statusForCallers).
 */
export function endingReason({ record, asked, cleanupStarted }: RequestState): string | undefined {
  if (cleanupStarted) return undefined; // the record says Completing (or how it ended) itself
  if (asked.complete) return 'its completion has been asked for';
  const end = record.request.period.end;
  if (record.status === 'Fulfilled' && Date.parse(end) <= Date.now()) return `its period ended at ${end}`;
  return undefined;
}

/** The status the request's validators judge by: Completing from the moment it is ending, else the record's. */
export const statusForCallers = (state: RequestState): RequestStatus => (endingReason(state) ? 'Completing' : state.record.status);

/** The request's period has not started yet: nothing is built before it does. */
export const periodAhead = ({ record }: RequestState) => Date.parse(record.request.period.start) > Date.now();

/** The latest build attempt's number (0 before the first): the record's build is its one source. */
export const attemptOf = (state: RequestState) => state.record.build?.attempt ?? 0;
