import { condition, patched, setHandler, type CancellationScope } from '@temporalio/workflow';
import {
  approveUpdate,
  buildPhaseSignal,
  buildReportSignal,
  cancelUpdate,
  completeUpdate,
  extendUpdate,
  rebuildUpdate,
  rejectUpdate,
  revealCredentialsUpdate,
  statusQuery,
  vmDriftSignal,
  type Actor,
  type Extension,
  type Rejection,
  type RevealedCredentials,
  type UpdateResult,
} from '../../contracts/messages';
import { parseActor, parseExtension, parseRejection } from '../../contracts/updateArguments';
import type { BuildPhase, BuildTask, RequestRecord, RequestStatus, VmDrift, VmRequestInput } from '../../contracts/types';
import { deviceNames } from '../../domain/deviceNames';
import type { SealedCredentials } from '../../domain/guestCredentials';
import type { RequestPolicy } from '../../domain/requestPolicy';
import { defaultRequestPolicy, leaseEndRefusal } from '../../domain/requestPolicyRules';
import { BUILDING, decide, refusal, type RequestAction, type RequestEvent } from '../../domain/requestLifecycle';
import { applyBuildPhase } from './buildAttempt';
import { revealCredentials, revealRefusal } from './credentials';
import { applyDrift } from './drift';
import { answer, move, note, publish } from './timeline';
import { PATCHES } from '../patches';

/** A migration the sync reported whose cloud-init snippet has not followed the VM yet. */
export interface SnippetMove {
  vmid: number;
  from: string;
  to: string;
}

/**
 * The one thing the request is set to do next that its status does not say yet, asked by a handler (or the sync) and
 * carried out by the runbook (vmRequest.ts). At most one at a time: a completion supersedes whatever else waited; once
 * the cleanup has begun the request is `leaving` for good and nothing else can be asked.
 */
export type Intent =
  /** A failed or cancelled request is to be built again (taken when the runbook queues the build). */
  | { kind: 'rebuild'; by: string }
  /** The build is to be cancelled, or not started (taken when the build ends, or instead of starting it). */
  | { kind: 'cancel'; by: string }
  /** The request is to end now (taken when its cleanup starts). */
  | { kind: 'complete'; by: string }
  /** The sync found the fulfilled request's VM gone: the lease ends, the request fails (taken when it does). */
  | { kind: 'vmVanished'; vmid: number }
  /** The cleanup has begun: the request is on its way out, whatever its status says next. */
  | { kind: 'leaving'; why: string };

/**
 * Where each intent may stand, from the lifecycle table's own rows (an intent waits in a status its action is allowed
 * in), with the two the table cannot say: a cancel that reached the build waits through Cancelling, and `leaving`
 * holds from the cleanup's start to the request's end (Completed, or Cancelled after a cancelled build).
 */
function intentHolds(status: RequestStatus, intent: Intent): boolean {
  switch (intent.kind) {
    case 'cancel':
      return status === 'Cancelling' || decide(status, 'cancel').allowed;
    case 'leaving':
      return status === 'Completing' || status === 'Completed' || status === 'Cancelled';
    default:
      return decide(status, intent.kind).allowed;
  }
}

/**
 * One VM request: its record (what the `status` query shows and continue-as-new carries over) and its single state,
 * the record's status and at most one pending intent. Its messages are its methods, each validator beside its handler;
 * every change of status goes through `move`, which checks the invariants in one place (`checkInvariants`). The way
 * Temporal's safe-message-handlers sample keeps its cluster manager: the runbook (vmRequest.ts) and the handlers share
 * this object and nothing else.
 *
 * Every validator asks the lifecycle table (requestLifecycle.ts) whether the action is allowed in the request's status;
 * what it adds is only what the table cannot know (an action already asked for, who may take the logins).
 */
export class VmRequest {
  readonly serial: string;
  readonly policy: RequestPolicy;
  readonly record: RequestRecord;
  /** What was asked and not carried out yet (see Intent). Read it through the methods below. */
  private intent?: Intent;
  /** Migrations the sync reported; the lease empties the list before any continue-as-new. */
  readonly snippetMoves: SnippetMove[] = [];
  /** The scope the current build runs in: cancelling it cancels the build, which then runs its undos. */
  buildScope?: CancellationScope;
  /** A cancelled build cannot carry its record in its failure: it reports it by signal before it ends. */
  readonly finalBuildReports: Record<number, BuildTask> = {};
  /**
   * The guest's logins, never in the record (queries would show them), sealed under the request's credential key,
   * which is destroyed once they are revealed or the request ends: after that no history holds them readable.
   */
  credentials?: SealedCredentials;
  /**
   * Whether its build made the VM an HA resource, as the build said (not carried over a continue-as-new, which keeps
   * 1.0's record: unknown then, and the completion looks for the HA resource as it always did).
   */
  vmHaResource?: boolean;
  /** The revision the request was started with (REQUEST_REVISION's table); 1.0's when its starter gave none. */
  readonly revision: number;

  /** A new request, or a resumed one (continue-as-new carries the record and the sealed logins as 1.0 did). */
  constructor(input: VmRequestInput, now: string) {
    this.serial = input.request.serial;
    this.policy = input.policy ?? defaultRequestPolicy;
    this.record = input.resumed ?? {
      serial: this.serial,
      request: input.request,
      status: 'Pending',
      device: { hostname: deviceNames(this.serial, input.request.name).hostname },
      timeline: [{ at: now, event: `submitted by ${input.request.requester}`, by: input.request.requester }],
      leftovers: [],
    };
    this.credentials = input.resumedCredentials;
    this.revision = input.revision ?? 1;
  }

  /** Whether the request was started with this revision of its behaviour or a later one (REQUEST_REVISION). */
  revisionAtLeast(revision: number): boolean {
    return this.revision >= revision;
  }

  // ---- The single state -------------------------------------------------------------------------------------------

  /** The pending intent of this kind, if that is the one pending. */
  pending<K extends Intent['kind']>(kind: K): Extract<Intent, { kind: K }> | undefined {
    return this.intent?.kind === kind ? (this.intent as Extract<Intent, { kind: K }>) : undefined;
  }

  /** The runbook carried the intent out (or it no longer applies): nothing is pending. */
  private take(kind: Intent['kind']): void {
    if (this.intent?.kind === kind) this.intent = undefined;
  }

  /** A completion supersedes whatever waited; nothing supersedes `leaving`; anything else waits for nothing pending. */
  private ask(intent: Intent): void {
    if (this.intent?.kind === 'leaving') throw new Error(`request ${this.serial}: ${intent.kind} asked after its cleanup began`);
    if (this.intent && intent.kind !== 'complete' && intent.kind !== 'leaving' && this.intent.kind !== intent.kind) {
      throw new Error(`request ${this.serial}: ${intent.kind} asked while ${this.intent.kind} is pending`);
    }
    this.intent = intent;
    this.checkInvariants();
  }

  /**
   * The request's invariants, checked after every change of its state: the pending intent stands where it may (see
   * intentHolds), a build scope exists only while a build runs. A breach is a bug in the runbook: the workflow task
   * fails (and retries once fixed) rather than the request going on from a state no rule describes.
   */
  private checkInvariants(): void {
    const { status } = this.record;
    if (this.intent && !intentHolds(status, this.intent)) throw new Error(`request ${this.serial}: ${this.intent.kind} cannot be pending while ${status}`);
    if (this.buildScope && !BUILDING.includes(status) && status !== 'Cancelling') throw new Error(`request ${this.serial}: a build scope while ${status}`);
  }

  /** Moves the request to the status the lifecycle table gives for `event`, on the timeline and in its search attributes. */
  move(event: RequestAction | RequestEvent, text: string, by?: string): void {
    move(this, event, text, by, !this.buildFollowsInThisTask(event));
    this.checkInvariants();
  }

  /**
   * An approval once the period has started, with nothing else asked: the runbook starts the build in this same
   * workflow task, and that move publishes. Temporal applies a task's upserts together, so nobody could ever have
   * seen the approval's own; from revision 2 it is not made (one billable Action fewer).
   */
  private buildFollowsInThisTask(event: RequestAction | RequestEvent): boolean {
    return event === 'approve' && this.revisionAtLeast(2) && !this.periodAhead() && this.intent === undefined;
  }

  /**
   * Why the request is on its way out, or undefined while it is not: its completion was asked for, or its lease is over
   * (a fulfilled request whose period has ended, though the runbook may not have woken yet). Once its cleanup has begun
   * the record says Completing (or how it ended) itself. From that moment it is Completing to every caller: one fact,
   * which every validator asks (statusForCallers).
   */
  endingReason(): string | undefined {
    if (this.intent?.kind === 'leaving') return undefined;
    if (this.intent?.kind === 'complete') return 'its completion has been asked for';
    const end = this.record.request.period.end;
    if (this.record.status === 'Fulfilled' && Date.parse(end) <= Date.now()) return `its period ended at ${end}`;
    return undefined;
  }

  /** The status the request's validators judge by: Completing from the moment it is ending, else the record's. */
  statusForCallers(): RequestStatus {
    return this.endingReason() ? 'Completing' : this.record.status;
  }

  /** The request's period has not started yet: nothing is built before it does. */
  periodAhead(): boolean {
    return Date.parse(this.record.request.period.start) > Date.now();
  }

  /** The latest build attempt's number (0 before the first): the record's build is its one source. */
  attempt(): number {
    return this.record.build?.attempt ?? 0;
  }

  private allowed(action: RequestAction): void {
    // A request cleaned up after a cancelled build says Cancelled while its workflow closes: it has ended all the same.
    const leaving = this.pending('leaving');
    if (leaving && this.record.status === 'Cancelled') throw new Error(`cannot ${action} request ${this.serial}: it was cleaned up (${leaving.why}) and has ended`);
    const ending = this.endingReason();
    const why = refusal(this.serial, this.statusForCallers(), action);
    if (why) throw new Error(ending ? `${why} (${ending})` : why);
  }

  // ---- Messages ---------------------------------------------------------------------------------------------------

  /** Sets every handler; called before the runbook's first await, so that a message in the first task finds them. */
  register(): void {
    setHandler(statusQuery, () => this.record);
    setHandler(approveUpdate, (a) => this.approve(a), { validator: (a) => this.validateApprove(a) });
    setHandler(rejectUpdate, (r) => this.reject(r), { validator: (r) => this.validateReject(r) });
    setHandler(rebuildUpdate, (a) => this.rebuild(a), { validator: (a) => this.validateRebuild(a) });
    setHandler(completeUpdate, (a) => this.complete(a), { validator: (a) => this.validateComplete(a) });
    setHandler(cancelUpdate, (a) => this.cancel(a), { validator: (a) => this.validateCancel(a) });
    setHandler(extendUpdate, (e) => this.extend(e), { validator: (e) => this.validateExtend(e) });
    setHandler(revealCredentialsUpdate, (a) => this.reveal(a), { validator: (a) => this.validateReveal(a) });
    setHandler(buildReportSignal, (build) => {
      this.finalBuildReports[build.attempt] = build;
    });
    setHandler(buildPhaseSignal, (phase: BuildPhase) => applyBuildPhase(this, phase));
    setHandler(vmDriftSignal, (drift: VmDrift) => applyDrift(this, drift));
  }

  // approve / reject: a Pending request's decision; the runbook waits for it (or expires the request).

  private validateApprove(actor: unknown): void {
    parseActor('approve', actor);
    this.allowed('approve');
  }

  private approve({ by, note: why }: Actor): UpdateResult {
    this.move('approve', why ? `approved: ${why}` : 'approved', by);
    // The runbook starts the build in this same workflow task when the period has begun; otherwise it waits.
    const start = this.record.request.period.start;
    return Date.parse(start) <= Date.now() ? answer(this, { build: { attempt: this.attempt() + 1, state: 'queued' } }) : answer(this, { buildsAt: start });
  }

  private validateReject(rejection: unknown): void {
    parseRejection('reject', rejection);
    this.allowed('reject');
  }

  private reject({ by, reason }: Rejection): UpdateResult {
    this.move('reject', `rejected: ${reason}`, by);
    return answer(this);
  }

  // rebuild: asked here, queued by the runbook when it waits for it (awaitRebuildOrCompletion), built by buildOnce.

  private validateRebuild(actor: unknown): void {
    parseActor('rebuild', actor);
    this.allowed('rebuild');
    if (this.pending('rebuild')) throw new Error(`a rebuild of ${this.serial} is already queued`);
  }

  private async rebuild({ by }: Actor): Promise<UpdateResult> {
    const before = this.attempt();
    this.ask({ kind: 'rebuild', by });
    note(this, 'rebuild requested', by);
    // Answer with the new build, which the runbook starts in this same workflow task (or the completion that won);
    // before the period's start, with when it builds (the runbook waits for it, as for the first build).
    const leaving = () => this.pending('leaving') !== undefined;
    await condition(() => this.attempt() > before || leaving() || (this.record.status === 'Approved' && this.periodAhead()));
    return this.attempt() > before || leaving() ? answer(this) : answer(this, { buildsAt: this.record.request.period.start });
  }

  /**
   * A failed or cancelled build, or a vanished VM: nothing happens until someone asks for a rebuild or a completion,
   * or (from patch `failed-request-ends-with-period`) the period ends, as a lease would: then the request is cleaned
   * up like any other, instead of waiting (and counting against its org's quota) for ever. An extension moves the end.
   */
  async awaitRebuildOrCompletion(): Promise<'rebuild' | 'complete' | 'periodEnded'> {
    const asked = () => this.pending('rebuild') !== undefined || this.pending('complete') !== undefined;
    if (!patched(PATCHES.failedRequestEndsWithPeriod)) await condition(asked);
    for (let end = this.record.request.period.end; !asked(); end = this.record.request.period.end) {
      const left = Date.parse(end) - Date.now();
      if (left <= 0) return 'periodEnded';
      const moved = () => this.record.request.period.end !== end;
      if (!(await condition(() => asked() || moved(), left))) return 'periodEnded';
    }
    if (this.pending('rebuild')) {
      this.take('rebuild');
      this.move('rebuild', `rebuild ${this.attempt() + 1} queued`);
      return 'rebuild';
    }
    return 'complete';
  }

  // complete: asked here; the runbook leaves the lease (or its wait) and starts the cleanup (leave), which answers it.

  private validateComplete(actor: unknown): void {
    parseActor('complete', actor);
    this.allowed('complete');
    if (this.pending('complete')) throw new Error(`completion of ${this.serial} is already under way`);
  }

  private async complete({ by }: Actor): Promise<UpdateResult> {
    this.ask({ kind: 'complete', by });
    note(this, 'completion requested', by);
    // A running lease or a waiting request turns to Completing within this workflow task: answer with that.
    await condition(() => this.pending('leaving') !== undefined);
    return answer(this);
  }

  /** The cleanup begins (completion.ts): from here the request is on its way out, whatever was pending before. */
  leave(why: string): void {
    this.intent = { kind: 'leaving', why };
    this.move('cleanupStarted', why);
  }

  /** The request workflow itself was cancelled (Temporal UI): whatever was pending gives way to its cleanup. */
  cancelledFromOutside(): void {
    this.intent = undefined;
    this.move('requestCancelled', 'the request workflow was cancelled; cleaning up');
  }

  // cancel: before the build starts the runbook skips it (cancelledBeforeBuild); a running build is cancelled here
  // and ends through its undos (buildOnce then takes the cancel).

  private validateCancel(actor: unknown): void {
    parseActor('cancel', actor);
    this.allowed('cancel');
    if (this.pending('cancel')) throw new Error(`a cancel of ${this.serial} is already under way`);
  }

  private async cancel({ by, note: why }: Actor): Promise<UpdateResult> {
    this.ask({ kind: 'cancel', by });
    const event = why ? `cancel requested: ${why}` : 'cancel requested';
    if (this.buildScope && this.record.build) {
      // The request says Cancelling until the build reports it is cancelled.
      this.record.build = { ...this.record.build, state: 'cancelling' };
      this.move('cancel', event, by);
      this.buildScope.cancel();
      return answer(this);
    }
    // No build yet: the runbook ends the request's wait and marks it Cancelled in this same workflow task.
    note(this, event, by);
    await condition(() => this.record.status !== 'Approved');
    return answer(this);
  }

  /** The runbook is about to build: a cancel asked before it started means the build never does. */
  cancelledBeforeBuild(): boolean {
    if (!this.pending('cancel')) return false;
    this.take('cancel');
    this.move('buildCancelled', 'cancelled before the build started');
    return true;
  }

  /** The build ended (built, failed or cancelled): its scope goes, and a cancel that waited for it, or came too late, is spent. */
  buildEnded(): void {
    this.buildScope = undefined;
    this.take('cancel');
  }

  // vmVanished: the sync says so (drift.ts); the lease ends and the runbook fails the request (loseVm).

  /** The fulfilled request's VM is gone from the cluster; a completion already asked for goes ahead instead. */
  vmVanished(vmid: number): void {
    if (!this.pending('complete')) this.ask({ kind: 'vmVanished', vmid });
  }

  /** The runbook failed the request for its vanished VM. */
  vanishedTaken(): void {
    this.take('vmVanished');
  }

  // extend: moves the period's end; the lease re-arms its wait on it.

  private validateExtend(ext: unknown): void {
    const { newEnd } = parseExtension('extend', ext);
    this.allowed('extend');
    const policyRefusal = leaseEndRefusal(this.policy, this.record.request.period.start, newEnd, Date.now());
    if (policyRefusal) throw new Error(`cannot extend ${this.serial} to ${newEnd}: ${policyRefusal.reason}`);
  }

  private extend({ by, newEnd, note: why }: Extension): UpdateResult {
    const from = this.record.request.period.end;
    this.record.request = { ...this.record.request, period: { ...this.record.request.period, end: newEnd } };
    note(this, `lease end moved from ${from} to ${newEnd}${why ? `: ${why}` : ''}`, by);
    publish(this);
    return answer(this, { periodEnd: newEnd });
  }

  // revealCredentials: custody of the logins, credentials.ts.

  private validateReveal({ by }: { by: string }): void {
    const why = revealRefusal(this, by);
    if (why) throw new Error(why);
    this.allowed('revealCredentials');
  }

  private reveal({ by }: { by: string }): Promise<RevealedCredentials> {
    return revealCredentials(this, by);
  }
}
