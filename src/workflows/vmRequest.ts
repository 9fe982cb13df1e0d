import {
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowFailure,
  ParentClosePolicy,
  allHandlersFinished,
  condition,
  executeChild,
  isCancellation,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import { deviceNames } from '../domain/deviceRequest';
import {
  actorSchema,
  approveUpdate,
  buildPhaseSignal,
  buildReportSignal,
  cancelUpdate,
  completeUpdate,
  rebuildUpdate,
  rejectSchema,
  rejectUpdate,
  statusQuery,
  type UpdateResult,
} from './messages';
import { ConsultantsKey, OrgKey, PveNodeKey, RequestStatusKey, SerialKey, VmIdKey } from './searchAttributes';
import type { BuildTask, RequestRecord, RequestStatus, VmRequestInput } from './types';
import { vmBuild } from './vmBuild';
import { vmCompletion } from './vmCompletion';

/**
 * One VM request from submission to cleanup: the system of record for it. An admin approves (or rejects); at the
 * period's start the VM is built; it is fulfilled until the period ends or someone completes it early; then it is
 * cleaned up. A failed build waits for a rebuild or a completion.
 */
export async function vmRequest({ request }: VmRequestInput): Promise<RequestRecord> {
  const { serial } = request;
  const record: RequestRecord = {
    serial,
    request,
    status: 'Pending',
    device: { hostname: deviceNames(serial, request.name).hostname },
    timeline: [{ at: new Date().toISOString(), event: `submitted by ${request.requester}`, by: request.requester }],
    leftovers: [],
  };
  // The record is complete before any handler exists: an approve delivered with the very first workflow task
  // runs as soon as its handler is set, and must find (and change) the submitted state, not be overwritten by it.
  upsertSearchAttributes([
    { key: SerialKey, value: serial },
    { key: OrgKey, value: request.org },
    { key: ConsultantsKey, value: request.consultants },
    { key: RequestStatusKey, value: 'Pending' },
  ]);
  let completeRequested = false;
  let rebuildRequested = false;
  let cancelRequested = false;
  let attempt = 0;
  /** The scope the current build runs in: cancelling it cancels the build, which then runs its undos. */
  let buildScope: CancellationScope | undefined;
  /** A cancelled build cannot carry its record in its failure: it reports it by signal before it ends. */
  const finalBuildReports = new Map<number, BuildTask>();

  const transition = (status: RequestStatus, event: string, by?: string) => {
    record.status = status;
    record.timeline.push({ at: new Date().toISOString(), event, ...(by ? { by } : {}) });
    upsertSearchAttributes([{ key: RequestStatusKey, value: status }]);
  };
  const answer = (): UpdateResult => ({ serial, status: record.status });
  const refuse = (action: string, allowed: RequestStatus[]) => {
    if (!allowed.includes(record.status)) {
      throw new Error(`cannot ${action} request ${serial}: it is ${record.status} (only when ${allowed.join(' or ')})`);
    }
  };

  // Handlers before the first await: messages may arrive with the very first workflow task.
  setHandler(statusQuery, () => record);
  setHandler(
    approveUpdate,
    ({ by, note }) => {
      transition('Approved', note ? `approved: ${note}` : 'approved', by);
      return answer();
    },
    {
      validator: (actor) => {
        actorSchema.parse(actor);
        refuse('approve', ['Pending']);
      },
    },
  );
  setHandler(
    rejectUpdate,
    ({ by, reason }) => {
      transition('Rejected', `rejected: ${reason}`, by);
      return answer();
    },
    {
      validator: (rejection) => {
        rejectSchema.parse(rejection);
        refuse('reject', ['Pending']);
      },
    },
  );
  setHandler(
    rebuildUpdate,
    ({ by }) => {
      rebuildRequested = true;
      record.timeline.push({ at: new Date().toISOString(), event: 'rebuild requested', by });
      return answer();
    },
    {
      validator: (actor) => {
        actorSchema.parse(actor);
        refuse('rebuild', ['Failed', 'Cancelled']);
        if (rebuildRequested) throw new Error(`a rebuild of ${serial} is already queued`);
      },
    },
  );
  setHandler(
    completeUpdate,
    ({ by }) => {
      completeRequested = true;
      record.timeline.push({ at: new Date().toISOString(), event: 'completion requested', by });
      return answer();
    },
    {
      validator: (actor) => {
        actorSchema.parse(actor);
        refuse('complete', ['Approved', 'Fulfilled', 'Failed', 'Cancelled']);
        if (completeRequested) throw new Error(`completion of ${serial} is already under way`);
      },
    },
  );
  setHandler(
    cancelUpdate,
    ({ by, note }) => {
      cancelRequested = true;
      record.timeline.push({ at: new Date().toISOString(), event: note ? `cancel requested: ${note}` : 'cancel requested', by });
      buildScope?.cancel();
      return answer();
    },
    {
      validator: (actor) => {
        actorSchema.parse(actor);
        refuse('cancel', ['Approved', 'Imaging', 'Provisioning', 'Configuring']);
        if (cancelRequested) throw new Error(`a cancel of ${serial} is already under way`);
      },
    },
  );
  setHandler(buildReportSignal, (build) => {
    finalBuildReports.set(build.attempt, build);
  });
  setHandler(buildPhaseSignal, (p) => {
    if (p.attempt !== attempt) return; // a late word from an earlier attempt
    transition(p.status, `build ${p.attempt}: ${p.status.toLowerCase()}`);
    if (p.vmid) record.device.vmid = p.vmid;
    if (p.node) record.device.node = p.node;
    if (p.vmid && p.node) upsertSearchAttributes([{ key: VmIdKey, value: p.vmid }, { key: PveNodeKey, value: p.node }]);
  });

  await condition(() => record.status !== 'Pending');
  if (record.status === 'Rejected') return finish();

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
    // The VM is built when the period starts, not before (a durable timer: it survives any restart).
    const untilStart = Date.parse(request.period.start) - Date.now();
    if (untilStart > 0) await condition(() => completeRequested || cancelRequested, untilStart);

    while (!completeRequested) {
      if (cancelRequested) {
        cancelRequested = false;
        transition('Cancelled', 'cancelled before the build started');
        await waitForRebuildOrCompletion();
        continue;
      }
      attempt += 1;
      rebuildRequested = false;
      const buildId = `vm-build-${serial}-${attempt}`;
      record.build = { workflowId: buildId, attempt, state: 'queued', stage: 'queued', progress: 0, log: [], leftovers: [] };
      buildScope = new CancellationScope();
      try {
        const result = await buildScope.run(() =>
          executeChild(vmBuild, {
            workflowId: buildId,
            args: [{ request, attempt }],
            // Abandoning a build half-way would leave a VM: a closing request asks it to cancel, which runs its undos.
            parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
            staticSummary: `Build ${attempt} of ${serial} (${request.name}, ${request.org})`,
          }),
        );
        record.build = result.build;
        Object.assign(record.device, { vmid: result.vmid, node: result.node, ip: result.ip, vpnIp: result.vpnIp, vpnHostname: result.vpnHostname });
        upsertSearchAttributes([{ key: VmIdKey, value: result.vmid }, { key: PveNodeKey, value: result.node }]);
        transition('Fulfilled', `build ${attempt} completed: VM ${result.vmid} on ${result.node}, ${result.ip}`);
        break;
      } catch (err) {
        // The request itself was cancelled: handled by the caller. A build cancelled by `cancel` or from Temporal UI
        // (vm-build-* cancelled directly) lands here as the same cancellation.
        if (CancellationScope.current().consideredCancelled) throw err;
        const cancelled = isCancellation(err);
        cancelRequested = false;
        const reported = finalBuildReports.get(attempt);
        record.build = buildOf(err) ?? reported ?? { ...record.build, state: cancelled ? 'cancelled' : 'failed', error: cancelled ? 'cancelled' : messageOf(err) };
        record.device.vmid = undefined;
        record.device.node = undefined;
        if (cancelled) transition('Cancelled', `build ${attempt} cancelled${record.build.leftovers.length ? `; left behind: ${record.build.leftovers.join('; ')}` : ''}`);
        else transition('Failed', `build ${attempt} failed: ${record.build.error ?? messageOf(err)}`);
        await waitForRebuildOrCompletion();
      } finally {
        buildScope = undefined;
      }
    }

    if (record.status === 'Fulfilled' && !completeRequested) {
      const untilEnd = Date.parse(request.period.end) - Date.now();
      if (untilEnd > 0) await condition(() => completeRequested, untilEnd);
    }
  }

  async function waitForRebuildOrCompletion(): Promise<void> {
    await condition(() => rebuildRequested || completeRequested);
    if (rebuildRequested && !completeRequested) transition('Approved', `rebuild ${attempt + 1} queued`);
  }

  /** The end of the request: the completion runbook as a child, and what it could not remove on the record. */
  async function cleanUp(why: string): Promise<void> {
    const finalStatus = record.status === 'Cancelled' ? 'Cancelled' : 'Completed';
    transition('Completing', why);
    const completion = await executeChild(vmCompletion, {
      workflowId: `vm-completion-${serial}`,
      args: [{ serial, name: request.name, vmid: record.device.vmid, node: record.device.node }],
      parentClosePolicy: ParentClosePolicy.ABANDON,
      staticSummary: `Cleanup of ${serial} (${request.name}, ${request.org})`,
    });
    record.leftovers = completion.leftovers;
    const outcome = completion.leftovers.length ? `left behind: ${completion.leftovers.join('; ')}` : 'nothing left behind';
    transition(finalStatus, `${finalStatus === 'Cancelled' ? 'cancelled' : 'completed'}; ${outcome}`);
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
