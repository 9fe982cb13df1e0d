import { failureMessage } from '../failureMessage';
import { ApplicationFailure, CancellationScope, ChildWorkflowFailure, ParentClosePolicy, executeChild, isCancellation } from '@temporalio/workflow';
import type { BuildPhase, BuildTask } from '../../contracts/types';
import { buildWorkflowId } from '../../contracts/workflowIds';
import { atStart, buildSearchAttributes } from '../../contracts/searchAttributes';
import { BUILDING } from '../../domain/requestLifecycle';
import { vmBuild } from '../vmBuild';
import { forgetCredentials, keepCredentials } from './credentials';
import { PREVIOUS_BUILDS_KEPT } from './bounds';
import type { VmRequest } from './request';
import { forgetVm, publish } from './timeline';

export type BuildOutcome = 'fulfilled' | 'failed' | 'cancelled';

/**
 * One build attempt as a child workflow in its own cancellation scope (a `cancel` cancels the scope; the build runs
 * its undos). The build owns its task while it runs; when it ends, its final task becomes the record's `build`.
 */
export async function buildOnce(state: VmRequest): Promise<BuildOutcome> {
  const { serial, record } = state;
  if (state.cancelledBeforeBuild()) return 'cancelled';
  const attempt = state.attempt() + 1;
  if (record.build) record.previousBuilds = [...(record.previousBuilds ?? []), record.build].slice(-PREVIOUS_BUILDS_KEPT);
  record.build = { workflowId: buildWorkflowId(serial, attempt), attempt, state: 'queued', stage: 'queued', progress: 0, log: [], leftovers: [], startedAt: new Date().toISOString() };
  state.buildScope = new CancellationScope();
  // Imaging from the moment the build is started, rather than when the build says so: a signal fewer per build.
  state.move('buildStarted', `build ${attempt}: imaging`);
  try {
    const result = await state.buildScope.run(() =>
      executeChild(vmBuild, {
        workflowId: record.build!.workflowId,
        args: [{ request: record.request, attempt }],
        // Abandoning a build half-way would leave a VM: a closing request asks it to cancel, which runs its undos.
        parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
        // Findable from its start, as the build would make itself in its first task: an upsert (an Action) fewer.
        typedSearchAttributes: atStart(buildSearchAttributes(serial, { state: 'started' })),
        staticSummary: `Build ${attempt} of ${serial} (${record.request.name}, ${record.request.org})`,
      }),
    );
    record.build = result.build;
    keepCredentials(state, result.credentials);
    state.vmHaResource = result.haResource;
    Object.assign(record.device, { vmid: result.vmid, node: result.node, ip: result.ip, vpnIp: result.vpnIp, vpnHostname: result.vpnHostname, state: 'running' });
    state.buildEnded(); // a cancel that came too late for this build
    state.move('buildSucceeded', `build ${attempt} completed: VM ${result.vmid} on ${result.node}, ${result.ip}`);
    return 'fulfilled';
  } catch (err) {
    // The request itself was cancelled: handled by the runbook. A build cancelled by `cancel` or from Temporal UI
    // (vm-build-* cancelled directly) lands here as the same cancellation.
    if (CancellationScope.current().consideredCancelled) throw err;
    const cancelled = isCancellation(err);
    state.buildEnded();
    const ended = buildOf(err) ?? state.finalBuildReports[attempt];
    record.build = ended ?? { ...record.build!, state: cancelled ? 'cancelled' : 'failed', error: cancelled ? 'cancelled' : failureMessage(err), endedAt: new Date().toISOString() };
    // The VM the build could not destroy is still the request's: completion must find it, whatever builds come next.
    if (record.build.leftoverVm) record.leftoverVms = [...(record.leftoverVms ?? []), record.build.leftoverVm];
    forgetVm(state);
    const { leftovers, error } = record.build;
    if (cancelled) state.move('buildCancelled', `build ${attempt} cancelled${leftovers.length ? `; left behind: ${leftovers.join('; ')}` : ''}`);
    else state.move('buildFailed', `build ${attempt} failed: ${error ?? failureMessage(err)}`);
    return cancelled ? 'cancelled' : 'failed';
  } finally {
    // Also when the request itself was cancelled, which leaves before buildEnded.
    state.buildScope = undefined;
  }
}

/** The build says which phase it entered, and once it has one, which VM on which node. */
export function applyBuildPhase(state: VmRequest, phase: BuildPhase): void {
  const { record } = state;
  if (phase.attempt !== state.attempt()) return; // a late word from an earlier attempt
  if (phase.vmid) record.device.vmid = phase.vmid;
  if (phase.node) record.device.node = phase.node;
  // Cancelling stays so (the table says it); any other status means the phase came after the build's end: the
  // request already knows better.
  if (!BUILDING.includes(record.status)) return publish(state);
  state.move(phase.status === 'Provisioning' ? 'buildProvisioning' : 'buildConfiguring', `build ${phase.attempt}: ${phase.status.toLowerCase()}`);
}

/** The VM of a fulfilled request vanished from the cluster: the request fails, and waits for a rebuild or a completion. */
export function loseVm(state: VmRequest): void {
  const { vmid, node } = state.record.device;
  state.vanishedTaken();
  forgetCredentials(state);
  forgetVm(state);
  state.move('vmVanished', `VM ${vmid} vanished from the cluster (last seen on ${node}); rebuild or complete the request`);
}

/** The failed build's own record, carried in its failure details. */
function buildOf(err: unknown): BuildTask | undefined {
  if (err instanceof ChildWorkflowFailure && err.cause instanceof ApplicationFailure) {
    const details = err.cause.details?.[0] as BuildTask | undefined;
    return details && typeof details === 'object' && 'stage' in details ? details : undefined;
  }
  return undefined;
}
