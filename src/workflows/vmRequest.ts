import {
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowFailure,
  ParentClosePolicy,
  allHandlersFinished,
  condition,
  continueAsNew,
  executeChild,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { SearchAttributeUpdatePair } from '@temporalio/common';
import type { createActivities } from '../activities';
import { deviceNames } from '../domain/deviceNames';
import type { SealedCredentials } from '../domain/guestCredentials';
import { autoApprovalReason, defaultRequestPolicy, leaseEndRefusal } from '../domain/requestPolicyRules';
import { apiCall, cleanup } from './activityOptions';
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
  type UpdateResult,
} from '../contracts/messages';
import {
  BuildStatusKey,
  ConsultantsKey,
  OrgKey,
  PeriodEndKey,
  PeriodStartKey,
  PveNodeKey,
  RequestStatusKey,
  SerialKey,
  VmIdKey,
  VmNameKey,
  VmStateKey,
} from '../contracts/searchAttributes';
import type { BuildState, BuildTask, RequestRecord, RequestStatus, VmRequestInput } from '../contracts/types';
import { buildWorkflowId, completionWorkflowId } from '../contracts/workflowIds';
import { parseActor, parseExtension, parseRejection } from '../contracts/updateArguments';
import { vmBuild } from './vmBuild';
import { vmCompletion } from './vmCompletion';
import { handleVmOperations } from './vmOperations';

const notify = proxyActivities<ReturnType<typeof createActivities>>({ ...apiCall, retry: { ...apiCall.retry, maximumAttempts: 5 } });
const follow = proxyActivities<ReturnType<typeof createActivities>>(cleanup);

const HOUR = 3600_000;
const BUILDING: RequestStatus[] = ['Imaging', 'Provisioning', 'Configuring'];

/**
 * One VM request from submission to cleanup: the system of record for it. An admin approves (or the policy does;
 * unapproved requests expire); at the period's start the VM is built; it is fulfilled until the period ends (which
 * `extend` moves) or someone completes it early; then it is cleaned up. A failed or cancelled build, or a VM that
 * vanished from the cluster, waits for a rebuild or a completion.
 */
export async function vmRequest(input: VmRequestInput): Promise<RequestRecord> {
  const policy = input.policy ?? defaultRequestPolicy;
  const { serial } = input.request;
  const record: RequestRecord = input.resumed ?? {
    serial,
    request: input.request,
    status: 'Pending',
    device: { hostname: deviceNames(serial, input.request.name).hostname },
    timeline: [{ at: new Date().toISOString(), event: `submitted by ${input.request.requester}`, by: input.request.requester }],
    leftovers: [],
  };
  // The record is complete before any handler exists: an approve delivered with the very first workflow task
  // runs as soon as its handler is set, and must find (and change) the submitted state, not be overwritten by it.
  if (!input.resumed) {
    upsertSearchAttributes([
      { key: SerialKey, value: serial },
      { key: OrgKey, value: record.request.org },
      { key: VmNameKey, value: record.request.name },
      { key: ConsultantsKey, value: record.request.consultants },
      { key: RequestStatusKey, value: 'Pending' },
      { key: PeriodStartKey, value: new Date(record.request.period.start) },
      { key: PeriodEndKey, value: new Date(record.request.period.end) },
    ]);
  }
  let completeRequested = false;
  let rebuildRequested = false;
  let cancelRequested = false;
  let vmVanished = false;
  /** Migrations the sync reported whose snippet has not followed yet; the lease loop empties it before any continue-as-new. */
  const snippetMoves: Array<{ vmid: number; from: string; to: string }> = [];
  let attempt = record.build?.attempt ?? 0;
  /** The scope the current build runs in: cancelling it cancels the build, which then runs its undos. */
  let buildScope: CancellationScope | undefined;
  /** A cancelled build cannot carry its record in its failure: it reports it by signal before it ends. */
  const finalBuildReports = new Map<number, BuildTask>();
  /**
   * The guest's logins, never in the record (queries would show them), sealed under the request's credential key,
   * which is destroyed once they are revealed or the request ends: after that no history holds them readable.
   */
  let credentials: SealedCredentials | undefined = input.resumedCredentials;

  const now = () => new Date().toISOString();
  /** `also`: search attributes that change with the status, upserted with it (one command, not two). */
  const transition = (status: RequestStatus, event: string, by?: string, also: SearchAttributeUpdatePair[] = []) => {
    record.status = status;
    record.timeline.push({ at: now(), event, ...(by ? { by } : {}) });
    upsertSearchAttributes([{ key: RequestStatusKey, value: status }, ...also]);
  };
  /** The VM is gone (destroyed, vanished, never made): nothing in the record or the search attributes points at it. */
  const vmGone: SearchAttributeUpdatePair[] = [
    { key: VmIdKey, value: null },
    { key: PveNodeKey, value: null },
    { key: VmStateKey, value: null },
  ];
  const forgetVm = () => {
    for (const field of ['vmid', 'node', 'ip', 'vpnIp', 'vpnHostname'] as const) delete record.device[field];
  };
  const buildState = (state: BuildState): SearchAttributeUpdatePair => ({ key: BuildStatusKey, value: state });
  const note = (event: string, by?: string) => record.timeline.push({ at: now(), event, ...(by ? { by } : {}) });
  /** What an update did, as the request stands once it took effect: its status and the build it concerns. */
  const answer = (extra: Partial<UpdateResult> = {}): UpdateResult => ({
    serial,
    status: record.status,
    ...(record.build ? { build: { attempt: record.build.attempt, state: record.build.state } } : {}),
    ...extra,
  });
  /** Set when the completion runbook starts: a `complete` answers once the request is on its way out. */
  let cleanupStarted = false;
  const refuse = (action: string, allowed: RequestStatus[]) => {
    if (!allowed.includes(record.status)) {
      throw new Error(`cannot ${action} request ${serial}: it is ${record.status} (only when ${allowed.join(' or ')})`);
    }
  };

  // Handlers before the first await: messages may arrive with the very first workflow task.
  setHandler(statusQuery, () => record);
  setHandler(
    approveUpdate,
    ({ by, note: why }) => {
      transition('Approved', why ? `approved: ${why}` : 'approved', by);
      // The main body starts the build in this same workflow task when the period has begun; otherwise it waits.
      const start = record.request.period.start;
      return Date.parse(start) <= Date.now() ? answer({ build: { attempt: attempt + 1, state: 'queued' } }) : answer({ buildsAt: start });
    },
    {
    validator: (actor) => {
      parseActor('approve', actor);
      refuse('approve', ['Pending']);
    },
  });
  setHandler(
    rejectUpdate,
    ({ by, reason }) => {
      transition('Rejected', `rejected: ${reason}`, by);
      return answer();
    },
    {
    validator: (rejection) => {
      parseRejection('reject', rejection);
      refuse('reject', ['Pending']);
    },
  });
  setHandler(
    rebuildUpdate,
    async ({ by }) => {
      const before = attempt;
      rebuildRequested = true;
      note('rebuild requested', by);
      // Answer with the new build, which the main body starts in this same workflow task (or the completion that won).
      await condition(() => attempt > before || cleanupStarted);
      return answer();
    },
    {
    validator: (actor) => {
      parseActor('rebuild', actor);
      refuse('rebuild', ['Failed', 'Cancelled']);
      if (rebuildRequested) throw new Error(`a rebuild of ${serial} is already queued`);
    },
  });
  setHandler(
    completeUpdate,
    async ({ by }) => {
      completeRequested = true;
      note('completion requested', by);
      // A running lease or a waiting request turns to Completing within this workflow task: answer with that.
      await condition(() => cleanupStarted);
      return answer();
    },
    {
    validator: (actor) => {
      parseActor('complete', actor);
      refuse('complete', ['Approved', 'Fulfilled', 'Failed', 'Cancelled']);
      if (completeRequested) throw new Error(`completion of ${serial} is already under way`);
    },
  });
  setHandler(
    cancelUpdate,
    async ({ by, note: why }) => {
      cancelRequested = true;
      const event = why ? `cancel requested: ${why}` : 'cancel requested';
      if (buildScope && record.build) {
        // The build's undos take their time: the request says Cancelling until the build reports it is cancelled.
        record.build = { ...record.build, state: 'cancelling' };
        transition('Cancelling', event, by, [buildState('cancelling')]);
        buildScope.cancel();
        return answer();
      }
      // No build yet: the main body ends the request's wait and marks it Cancelled in this same workflow task.
      note(event, by);
      await condition(() => record.status !== 'Approved');
      return answer();
    },
    {
      validator: (actor) => {
        parseActor('cancel', actor);
        refuse('cancel', ['Approved', ...BUILDING]); // Cancelling: already under way
        if (cancelRequested) throw new Error(`a cancel of ${serial} is already under way`);
      },
    },
  );
  setHandler(
    extendUpdate,
    ({ by, newEnd, note: why }) => {
      const from = record.request.period.end;
      record.request = { ...record.request, period: { ...record.request.period, end: newEnd } };
      note(`lease end moved from ${from} to ${newEnd}${why ? `: ${why}` : ''}`, by);
      upsertSearchAttributes([{ key: PeriodEndKey, value: new Date(newEnd) }]);
      return answer({ periodEnd: newEnd });
    },
    {
      validator: (ext) => {
        const { newEnd } = parseExtension('extend', ext);
        refuse('extend', ['Pending', 'Approved', ...BUILDING, 'Fulfilled']);
        const refusal = leaseEndRefusal(policy, record.request.period.start, newEnd, Date.now());
        if (refusal) throw new Error(`cannot extend ${serial} to ${newEnd}: ${refusal.reason}`);
      },
    },
  );
  setHandler(
    revealCredentialsUpdate,
    async ({ by }) => {
      const revealed = credentials!;
      credentials = undefined;
      const revealedAt = now();
      record.credentials = { available: false, revealedTo: by, revealedAt };
      note(`guest credentials revealed to ${by}`, by);
      // The API read the key before it asked: shredded before the answer, no one after it can open any copy.
      await shredCredentials();
      return { ...revealed, revealedTo: by, revealedAt };
    },
    {
      validator: ({ by }) => {
        if (!record.request.consultants.some((c) => c.toLowerCase() === String(by).toLowerCase())) {
          throw new Error(`the credentials of ${serial} are for its consultants only (${record.request.consultants.join(', ')})`);
        }
        if (!credentials) {
          throw new Error(
            record.credentials?.revealedTo
              ? `the credentials of ${serial} were already revealed to ${record.credentials.revealedTo} at ${record.credentials.revealedAt}`
              : `request ${serial} has no VM with credentials yet (it is ${record.status})`,
          );
        }
      },
    },
  );
  // Day-2 operations on the built VM (power, reconfigure, snapshots, migrate): vmOperations.ts.
  const operations = handleVmOperations({ record, policy, ending: () => completeRequested || cleanupStarted, note, upsert: upsertSearchAttributes });
  setHandler(buildReportSignal, (build) => {
    finalBuildReports.set(build.attempt, build);
  });
  setHandler(buildPhaseSignal, (p) => {
    if (p.attempt !== attempt) return; // a late word from an earlier attempt
    if (p.vmid) record.device.vmid = p.vmid;
    if (p.node) record.device.node = p.node;
    const where: SearchAttributeUpdatePair[] = p.vmid && p.node ? [{ key: VmIdKey, value: p.vmid }, { key: PveNodeKey, value: p.node }] : [];
    // A phase the build entered before it heard of the cancel does not undo Cancelling.
    if (record.status === 'Cancelling') {
      if (where.length) upsertSearchAttributes(where);
      return;
    }
    transition(p.status, `build ${p.attempt}: ${p.status.toLowerCase()}`, undefined, where);
  });
  setHandler(vmDriftSignal, (drift) => {
    if (drift.vmid !== record.device.vmid) return; // about a VM this request no longer has
    record.drift = { ...drift, at: now() };
    switch (drift.kind) {
      case 'moved':
        // The snippet follows in the lease loop (an activity cannot run in a signal handler).
        snippetMoves.push({ vmid: drift.vmid, from: drift.from, to: drift.to });
        record.device.node = drift.to;
        upsertSearchAttributes([{ key: PveNodeKey, value: drift.to }]);
        note(`VM ${drift.vmid} moved from ${drift.from} to ${drift.to} (migration or HA)`);
        break;
      case 'state':
        note(`VM ${drift.vmid} is ${drift.status} in the cluster`);
        upsertSearchAttributes([{ key: VmStateKey, value: drift.status }]);
        break;
      case 'vanished':
        // A fulfilled request says so once, in the transition to Failed that follows.
        if (record.status === 'Fulfilled') vmVanished = true;
        else note(`VM ${drift.vmid} vanished from the cluster`);
        break;
    }
  });

  if (!input.resumed) {
    const auto = autoApprovalReason(policy, record.request);
    if (auto) transition('Approved', auto, 'policy');
    const decided = await condition(() => record.status !== 'Pending', policy.pendingExpiryHours * HOUR);
    if (!decided) {
      transition('Expired', `not approved within ${policy.pendingExpiryHours} h; nothing was built`);
      return finish();
    }
    if (record.status === 'Rejected') return finish();
  }

  try {
    await leaseUntilDone();
  } catch (err) {
    // The request itself was cancelled (Temporal UI, `temporal workflow cancel`): clean up, then end as cancelled.
    if (!isCancellation(err)) throw err;
    transition('Cancelled', 'the request workflow was cancelled; cleaning up');
    await CancellationScope.nonCancellable(() => cleanUp('the request was cancelled'));
    throw err;
  }
  await cleanUp(completeRequested ? 'completing on request' : 'the period ended');
  return finish();

  /** From approval to the end of the lease: the build (again on rebuild), then the fulfilled period. */
  async function leaseUntilDone(): Promise<void> {
    if (record.status !== 'Fulfilled') {
      // The VM is built when the period starts, not before (a durable timer: it survives any restart).
      const untilStart = Date.parse(record.request.period.start) - Date.now();
      if (untilStart > 0) await condition(() => completeRequested || cancelRequested, untilStart);
    }
    for (;;) {
      if (completeRequested) return;
      if (record.status !== 'Fulfilled') {
        if (!(await buildOnce())) continue;
      }
      await holdLease();
      if (completeRequested || !vmVanished) return;
      vmVanished = false;
      forgetCredentials();
      const { vmid: lost, node: lastNode } = record.device;
      forgetVm();
      transition('Failed', `VM ${lost} vanished from the cluster (last seen on ${lastNode}); rebuild or complete the request`, undefined, vmGone);
      await shredCredentials();
      await waitForRebuildOrCompletion();
    }
  }

  /** One build attempt; false when it failed or was cancelled (after waiting for what comes next). */
  async function buildOnce(): Promise<boolean> {
    if (cancelRequested) {
      cancelRequested = false;
      transition('Cancelled', 'cancelled before the build started');
      await waitForRebuildOrCompletion();
      return false;
    }
    attempt += 1;
    rebuildRequested = false;
    const buildId = buildWorkflowId(serial, attempt);
    record.build = { workflowId: buildId, attempt, state: 'queued', stage: 'queued', progress: 0, log: [], leftovers: [] };
    buildScope = new CancellationScope();
    // Imaging from the moment the build is started, rather than when the build says so: a signal fewer per build.
    const requestMarkedImaging = patched('vm-request-marks-imaging');
    if (requestMarkedImaging) transition('Imaging', `build ${attempt}: imaging`, undefined, [buildState('building')]);
    else upsertSearchAttributes([buildState('building')]);
    try {
      const result = await buildScope.run(() =>
        executeChild(vmBuild, {
          workflowId: buildId,
          args: [{ request: record.request, attempt, ...(requestMarkedImaging ? { requestMarkedImaging } : {}) }],
          // Abandoning a build half-way would leave a VM: a closing request asks it to cancel, which runs its undos.
          parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
          staticSummary: `Build ${attempt} of ${serial} (${record.request.name}, ${record.request.org})`,
        }),
      );
      record.build = result.build;
      credentials = result.credentials;
      record.credentials = { available: credentials !== undefined };
      Object.assign(record.device, { vmid: result.vmid, node: result.node, ip: result.ip, vpnIp: result.vpnIp, vpnHostname: result.vpnHostname });
      cancelRequested = false; // a cancel that came too late for this build
      transition('Fulfilled', `build ${attempt} completed: VM ${result.vmid} on ${result.node}, ${result.ip}`, undefined, [
        { key: VmIdKey, value: result.vmid },
        { key: PveNodeKey, value: result.node },
        { key: VmStateKey, value: 'running' },
        buildState('completed'),
      ]);
      return true;
    } catch (err) {
      // The request itself was cancelled: handled by the caller. A build cancelled by `cancel` or from Temporal UI
      // (vm-build-* cancelled directly) lands here as the same cancellation.
      if (CancellationScope.current().consideredCancelled) throw err;
      const cancelled = isCancellation(err);
      cancelRequested = false;
      const reported = finalBuildReports.get(attempt);
      record.build = buildOf(err) ?? reported ?? { ...record.build, state: cancelled ? 'cancelled' : 'failed', error: cancelled ? 'cancelled' : messageOf(err) };
      // The VM the build could not destroy is still the request's: completion must find it, whatever builds come next.
      if (record.build.leftoverVm) record.leftoverVms = [...(record.leftoverVms ?? []), record.build.leftoverVm];
      forgetVm();
      const ended = [...vmGone, buildState(cancelled ? 'cancelled' : 'failed')];
      if (cancelled) transition('Cancelled', `build ${attempt} cancelled${record.build.leftovers.length ? `; left behind: ${record.build.leftovers.join('; ')}` : ''}`, undefined, ended);
      else transition('Failed', `build ${attempt} failed: ${record.build.error ?? messageOf(err)}`, undefined, ended);
      await waitForRebuildOrCompletion();
      return false;
    } finally {
      buildScope = undefined;
    }
  }

  /**
   * Fulfilled: wait for the period's end (an extension re-arms the wait), sending the lease notice before it, until a
   * completion or a vanished VM. A long lease continues as new so that its history stays small.
   */
  async function holdLease(): Promise<void> {
    for (;;) {
      if (completeRequested || vmVanished) return;
      const end = record.request.period.end;
      const untilEnd = Date.parse(end) - Date.now();
      if (untilEnd <= 0) return;
      const noticeDue = policy.noticeWebhookUrl && policy.endNoticeHours > 0 && record.noticeSentFor !== end;
      const untilNotice = untilEnd - policy.endNoticeHours * HOUR;
      if (noticeDue && untilNotice <= 0) {
        record.noticeSentFor = end;
        await notify
          .notifyLeaseEnding({ url: policy.noticeWebhookUrl!, serial, name: record.request.name, org: record.request.org, consultants: record.request.consultants, periodEnd: end })
          .then(() => note(`lease notice sent: ends ${end}`))
          .catch((err: Error) => note(`lease notice could not be sent: ${err.message}`));
        continue;
      }
      const move = snippetMoves.shift();
      // A move about a VM this request no longer has (rebuilt since) would carry the new VM's snippet off.
      if (move && move.vmid === record.device.vmid) {
        await follow
          .moveSnippet({ serial, name: record.request.name, from: move.from, to: move.to })
          .then((r) => note(r === 'absent' ? `no cloud-init snippet on ${move.from} to move to ${move.to}` : `cloud-init snippet moved from ${move.from} to ${move.to}`))
          .catch((err: Error) => note(`cloud-init snippet could not follow the VM from ${move.from} to ${move.to}: ${(err.cause as Error | undefined)?.message ?? err.message}; the VM cannot start on ${move.to} until it is there (completion removes it wherever it is)`));
        continue;
      }
      if (move) continue;
      if (workflowInfo().continueAsNewSuggested) {
        // A `complete` handler waits for the completion to start: it must not hold up the lease it ends.
        await condition(() => allHandlersFinished() || completeRequested || vmVanished);
        if (completeRequested || vmVanished) continue;
        await continueAsNew<typeof vmRequest>({ request: record.request, policy, resumed: record, resumedCredentials: credentials });
      }
      await condition(() => completeRequested || vmVanished || snippetMoves.length > 0 || record.request.period.end !== end, noticeDue ? untilNotice : untilEnd);
    }
  }

  async function waitForRebuildOrCompletion(): Promise<void> {
    await condition(() => rebuildRequested || completeRequested);
    if (rebuildRequested && !completeRequested) transition('Approved', `rebuild ${attempt + 1} queued`);
  }

  /** The end of the request: the completion runbook as a child, and what it could not remove on the record. */
  async function cleanUp(why: string): Promise<void> {
    // A day-2 operation under way finishes first: the completion must not shut down a VM in mid-migration.
    await condition(operations.idle);
    const finalStatus = record.status === 'Cancelled' ? 'Cancelled' : 'Completed';
    forgetCredentials();
    await shredCredentials();
    transition('Completing', why);
    // After the transition: a waiting `complete` answers with the request on its way out.
    cleanupStarted = true;
    const completion = await executeChild(vmCompletion, {
      workflowId: completionWorkflowId(serial),
      args: [{ serial, name: record.request.name, vmid: record.device.vmid, node: record.device.node, ...(record.leftoverVms?.length ? { leftoverVms: record.leftoverVms } : {}) }],
      parentClosePolicy: ParentClosePolicy.ABANDON,
      staticSummary: `Cleanup of ${serial} (${record.request.name}, ${record.request.org})`,
    });
    record.leftovers = completion.leftovers;
    const outcome = completion.leftovers.length ? `left behind: ${completion.leftovers.join('; ')}` : 'nothing left behind';
    if (completion.vmDestroyed) forgetVm();
    transition(finalStatus, `${finalStatus === 'Cancelled' ? 'cancelled' : 'completed'}; ${outcome}`, undefined, completion.vmDestroyed ? vmGone : []);
  }

  /** Logins of a VM that is gone are worth nothing to anyone: drop them. */
  function forgetCredentials(): void {
    credentials = undefined;
    if (record.credentials) record.credentials.available = false;
  }

  /** Destroys the request's credential key; a failure is noted for an operator, never fatal to the request. */
  async function shredCredentials(): Promise<void> {
    await notify.destroyCredentialKey({ serial }).catch((err: Error) => {
      note(`the guest credentials' key could not be destroyed (${err.message}): delete ${serial}.key.json from CREDENTIAL_KEYS_DIR`);
    });
  }

  async function finish(): Promise<RequestRecord> {
    await condition(allHandlersFinished);
    return record;
  }
}

/** The failed build's own record, carried in its failure details. */
function buildOf(err: unknown): BuildTask | undefined {
  if (err instanceof ChildWorkflowFailure && err.cause instanceof ApplicationFailure) {
    const details = err.cause.details?.[0] as BuildTask | undefined;
    return details && typeof details === 'object' && 'stage' in details ? details : undefined;
  }
  return undefined;
}

function messageOf(err: unknown): string {
  if (err instanceof ChildWorkflowFailure && err.cause) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}
