import { failureMessage } from './failureMessage';
import { ApplicationFailure, CancellationScope, CancelledFailure, getExternalWorkflowHandle, isCancellation, patched, setHandler, upsertSearchAttributes, workflowInfo, type ActivityFailure } from '@temporalio/workflow';
import type { GrantVpnAccessResult } from '../activities/netbird/access';
import type { VpnPeer } from '../activities/netbird/peer';
import type { GrantFailedAfterJoin } from '../activities/netbird/join';
import { deviceNames } from '../domain/deviceNames';
import { cloneSlotsOf } from './cloneSlot';
import { underFreshVmid } from './freshVmid';
// The quick calls (placement, VMID, HA) go as local activities (`api`); an SFTP upload as an activity (`remoteApi`).
import { apiActivities as remoteApi, cleanupActivities as undo, localApiActivities as api, taskActivities as task, waitActivities as wait } from './activityProxies';
import { buildPhaseSignal, buildReportSignal, buildStatusQuery } from '../contracts/messages';
import type { BuildPhase, BuildStage, BuildState, BuildTask, VmBuildInput, VmBuildResult } from '../contracts/types';
import { alreadyShown, buildSearchAttributes } from '../contracts/searchAttributes';
import { PATCHES } from './patches';

const LOG_LINES_KEPT = 200;

/**
 * One build attempt of a request: the runbook an operator would follow by hand, stage by stage. Every stage that
 * creates something registers its undo first; a failure or a cancel runs the undos, newest first, in a scope that
 * cannot be cancelled, and what could not be undone is named on the failure for an operator.
 */
export async function vmBuild({ request, attempt }: VmBuildInput): Promise<VmBuildResult> {
  const { serial } = request;
  const names = deviceNames(serial, request.name);
  const build: BuildTask = {
    workflowId: workflowInfo().workflowId,
    attempt,
    state: 'started',
    stage: 'queued',
    progress: 0,
    log: [],
    leftovers: [],
    startedAt: new Date().toISOString(),
  };
  // The build's task has one owner while it runs: this workflow (its request keeps it once it ended).
  setHandler(buildStatusQuery, () => build);
  const parent = workflowInfo().parent;
  const requestHandle = parent ? getExternalWorkflowHandle(parent.workflowId, parent.runId) : undefined;
  const slots = cloneSlotsOf(workflowInfo().workflowId, workflowInfo().taskQueue);
  const undos: Array<{ what: string; run: () => Promise<unknown>; vm?: { vmid: number; node: string } }> = [];

  const stage = (next: BuildStage, progress: number, message: string) => {
    build.state = 'building';
    build.stage = next;
    build.progress = progress;
    log(message);
  };
  const log = (message: string) => {
    build.log.push({ at: new Date().toISOString(), stage: build.stage, message });
    if (build.log.length > LOG_LINES_KEPT) build.log.splice(0, build.log.length - LOG_LINES_KEPT);
  };
  // Asked here, in the first workflow task, where the placement's local activity markers already cost their Action.
  const publishesChanges = patched(PATCHES.buildPublishesChanges);
  const startsUnderHa = patched(PATCHES.buildStartsUnderHa);
  const configuresDisk = patched(PATCHES.buildConfiguresDisk);
  const joinsVpnInOneStep = patched(PATCHES.buildJoinsVpnInOneStep);
  let published: string | undefined;
  /**
   * Upserted once per change of what the attributes show: each upsert is a billable Action. A build its request
   * started with its first attributes (buildOnce) shows them already: it does not upsert them again.
   */
  const publish = () => {
    const attributes = buildSearchAttributes(serial, build);
    const shown = JSON.stringify(attributes);
    if (publishesChanges && shown === published) return;
    const first = published === undefined;
    published = shown;
    if (first && alreadyShown(attributes, workflowInfo().typedSearchAttributes)) return;
    upsertSearchAttributes(attributes);
  };
  /** The request's status follows the build's phases; the VM is known from Provisioning on. */
  const phase = async (p: Omit<BuildPhase, 'attempt'>) => {
    Object.assign(build, p.vmid ? { vmid: p.vmid } : {}, p.node ? { node: p.node } : {});
    publish();
    await requestHandle?.signal(buildPhaseSignal, { attempt, ...p });
  };
  const end = (state: BuildState) => {
    build.state = state;
    build.endedAt = new Date().toISOString();
    build.durationSeconds = Math.round((Date.parse(build.endedAt) - Date.parse(build.startedAt!)) / 1000);
    publish();
  };

  publish();
  try {
    // Registered first so that it runs last: a VM that booted with its setup key may still join NetBird until the
    // VM is gone, so NetBird is cleaned only after the VM is destroyed. Harmless when nothing was made.
    undos.unshift({ what: `NetBird setup key, groups, policy and peer of ${serial}`, run: () => undo.revokeVpnAccess({ serial, name: request.name }) });

    stage('choosing-node', 5, 'choosing the node with the most free capacity');
    const plan = await api.planPlacement({
      serial,
      memoryMiB: request.memoryMiB,
      cores: request.cores,
      templateVmid: request.templateVmid,
      fullClone: request.fullClone,
      ...(request.imageTemplates ? { templates: request.imageTemplates } : {}),
    });
    // The VMID before the slot: the slot is then held only for the clone itself (Proxmox reserves no VMID, §4.5, so
    // reserving earlier changes nothing; the clone detects a collision either way).
    stage('reserving-vmid', 7, 'reserving a VMID');
    const reserved = await api.reserveVmid({ serial, exclude: [] });
    // With no clone limit and one place to go, there is nothing to wait for and nobody to spread against.
    const sole = plan.keys.length === 0 && plan.offers.length === 1 ? plan.offers[0] : undefined;
    if (!sole) stage('waiting-for-clone-slot', 10, `waiting for a clone slot on ${plan.cloneLoad}`);
    // Asked before anything is made: a build that ends from here on releases its place and slot (see the catch).
    const { node, cloneOn } = sole ?? (await slots.acquire(plan));
    log(cloneOn ? `node ${node} chosen; the template's disks are local to ${cloneOn}: a full clone there first, then a migration` : `node ${node} chosen`);
    // An image with a template per node: the one on the node the clone runs on (only the activities' arguments change:
    // a history without `plan.templates` replays to the same commands).
    const cloneFrom = plan.templates?.[cloneOn ?? node] ?? request.templateVmid;

    let destroy: (typeof undos)[number] | undefined;
    const {
      vmid,
      made: { templateVmid },
    } = await underFreshVmid(reserved, {
      reserve: (exclude) => api.reserveVmid({ serial, exclude }),
      make: (vmid) => {
        stage('cloning', 15, `cloning template onto node ${cloneOn ?? node} as VM ${vmid}`);
        // Registered before the clone: a cancel mid-clone must not leave the VM Proxmox goes on creating.
        destroy = { what: `VM ${vmid}`, run: () => undo.destroyVm({ serial, name: request.name, vmid, node }), vm: { vmid, node } };
        undos.unshift(destroy);
        return task.cloneTemplate({
          serial,
          name: request.name,
          vmid,
          node: cloneOn ?? node,
          templateVmid: cloneFrom,
          fullClone: cloneOn ? true : request.fullClone,
        });
      },
      disown: () => undos.splice(undos.indexOf(destroy!), 1),
      retrying: (vmid) => log(`VMID ${vmid} was taken by a concurrent clone; reserving another`),
    });
    slots.releaseSlot(vmid);
    log(`VM ${vmid} cloned on ${cloneOn ?? node}`);
    if (cloneOn) {
      stage('migrating', 25, `migrating VM ${vmid} from ${cloneOn} to ${node}`);
      await task.migrateVm({ serial, vmid, from: cloneOn, to: node });
      log(`VM ${vmid} migrated to ${node}`);
    }
    await phase({ status: 'Provisioning', vmid, node });

    stage('uploading-snippet', 35, `uploading the cloud-init snippet to ${node}`);
    undos.unshift({ what: `cloud-init snippet ${names.snippetFile} on ${node}`, run: () => undo.removeSnippet({ serial, name: request.name, node }) });
    // An activity even where the quick calls are local: an SFTP upload takes seconds, and while a local activity runs
    // the workflow task stays open, so neither a status query nor a cancel would see the build in this stage.
    const { snippetVolid, credentials, deviceGroupCreated } = await remoteApi.prepareCloudInit({ serial, name: request.name, node, sshKeys: request.sshKeys, cloudInit: request.cloudInit });

    stage('configuring', 45, `configuring ${request.cores} cores, ${request.memoryMiB} MiB, cloud-init ${snippetVolid}`);
    const configure = { serial, name: request.name, org: request.org, vmid, node, templateVmid, cores: request.cores, memoryMiB: request.memoryMiB, snippetVolid, network: request.network };
    if (configuresDisk && request.diskGiB) log(`growing the boot disk to ${request.diskGiB} GiB`);
    const configured = await task.configureVm(configuresDisk && request.diskGiB ? { ...configure, diskGiB: request.diskGiB } : configure);
    if (configured?.staticAddress) log(`static address ${configured.staticAddress} leased from the pool`);
    if (!configuresDisk && request.diskGiB) {
      log(`growing the boot disk to ${request.diskGiB} GiB`);
      await task.growDisk({ serial, vmid, node, diskGiB: request.diskGiB });
    }

    stage('starting', 55, `starting VM ${vmid}`);
    // Registered only once added: a cancel during the add leaves a resource that destroyVm's purge=1 removes.
    const ha = startsUnderHa ? await task.startVmUnderHa({ serial, vmid, node }) : (await task.startVm({ serial, vmid, node }), await api.addToHa({ serial, vmid, node }));
    if (ha.added) {
      undos.unshift({ what: `HA resource vm:${vmid}`, run: () => undo.removeFromHa({ serial, vmid, node }) });
      log(`VM ${vmid} is an HA resource${ha.group ? ` in group ${ha.group}` : ''}`);
    }

    stage('waiting-for-ip', 65, 'waiting for the guest agent to report an IPv4 address');
    // The VM runs: the cluster counts it from now on, so its place is given back with the request's next phase.
    slots.releasePlace();
    await phase({ status: 'Configuring', vmid, node });
    const ip = await wait.waitForGuestIp({ serial, vmid, node });
    log(`guest IPv4 ${ip}`);

    stage('vpn-peer', 80, `waiting for NetBird peer ${names.hostname}`);
    const granting = () => stage('vpn-access', 90, `granting ${request.consultants.length} consultant(s) one-way access`);
    const registered = (peer: VpnPeer) => log(`NetBird peer ${peer.vpnHostname} (${peer.vpnIp}) registered`);
    let peer: VpnPeer;
    let access: GrantVpnAccessResult;
    if (joinsVpnInOneStep) {
      // One activity waits for the peer and grants (an Action fewer): the grant's stage is logged once it is done.
      try {
        ({ peer, access } = await wait.joinVpn({ serial, name: request.name, vm: { node, vmid }, consultants: request.consultants, deviceGroupCreated }));
      } catch (err) {
        // The peer joined and the grant failed: the build failed granting, as it would have with two activities.
        const joined = grantFailedAfterJoin(err);
        if (joined) {
          registered(joined.peer);
          granting();
        }
        throw err;
      }
      registered(peer);
      granting();
    } else {
      peer = await wait.waitForPeer({ serial, name: request.name, vm: { node, vmid } });
      registered(peer);
      granting();
      // The device group as the peer list showed it: the grant need not read it again.
      // An activity too: the grant skips its policy lookup on a first attempt, and a local activity's attempts start
      // over at 1 when its workflow task is retried after a worker crash; an activity's count survives the crash.
      access = await remoteApi.grantVpnAccess({
        serial,
        name: request.name,
        peerId: peer.peerId,
        consultants: request.consultants,
        ...(peer.deviceGroup ? { deviceGroup: peer.deviceGroup } : {}),
        deviceGroupCreated,
      });
    }
    log(`VPN access for ${access.grantedConsultants.join(', ') || 'nobody'}`);
    if (access.missingConsultants.length > 0) {
      log(`no NetBird user for ${access.missingConsultants.join(', ')}: they have no access until they sign up and the request is rebuilt`);
    }

    stage('ready', 100, `VM ${vmid} ready on ${node} at ${ip}, VPN ${peer.vpnHostname}`);
    end('completed');
    return { vmid, node, ip, vpnIp: peer.vpnIp, vpnHostname: peer.vpnHostname, build, credentials, haResource: ha.added };
  } catch (err) {
    // A cancelled build whose running activity then failed (a clone answer lost after the cancel arrived) was still
    // cancelled: the server reports that activity's failure, not a cancellation.
    const cancelled = isCancellation(err) || CancellationScope.current().consideredCancelled;
    build.state = cancelled ? 'cancelling' : 'failed';
    build.error = cancelled ? 'cancelled' : failureMessage(err);
    log(cancelled ? 'cancelled: undoing what was made' : `failed at ${build.stage}: ${build.error}; undoing what was made`);
    await CancellationScope.nonCancellable(async () => {
      slots.releasePlace();
      for (const step of undos) {
        try {
          await step.run();
          log(`undone: ${step.what}`);
        } catch (undoErr) {
          build.leftovers.push(step.what);
          if (step.vm) build.leftoverVm = step.vm;
          log(`could not undo ${step.what}: ${failureMessage(undoErr)}`);
        }
      }
    });
    if (cancelled) {
      end('cancelled');
      await CancellationScope.nonCancellable(async () => requestHandle?.signal(buildReportSignal, build));
      throw isCancellation(err) ? err : new CancelledFailure('cancelled', [], err instanceof Error ? err : undefined);
    }
    end('failed');
    throw ApplicationFailure.create({
      type: 'BuildFailed',
      nonRetryable: true,
      message: `build ${attempt} of ${serial} failed at stage ${build.stage}: ${build.error}`,
      details: [build],
    });
  }
}

/** joinVpn's failure in its grant (activities/netbird/join.ts), with the peer that had joined. */
function grantFailedAfterJoin(err: unknown): GrantFailedAfterJoin | undefined {
  const details = ((err as ActivityFailure)?.cause as ApplicationFailure | undefined)?.details ?? [];
  return details.find((d): d is GrantFailedAfterJoin => typeof d === 'object' && d !== null && (d as GrantFailedAfterJoin).stage === 'vpn-access');
}
