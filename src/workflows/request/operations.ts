import { failureMessage } from '../failureMessage';
import { ApplicationFailure, condition, patched, proxyActivities, setHandler } from '@temporalio/workflow';
import type { createActivities } from '../../activities';
import { migrateUpdate, powerUpdate, reconfigureUpdate, snapshotUpdate } from '../../contracts/messages';
import { parseMigrateArgs, parsePowerArgs, parseReconfigureArgs, parseSnapshotArgs } from '../../contracts/operationArguments';
import type { RequestRecord } from '../../contracts/types';
import type { OperationCaller, OperationRecord, OperationResult, VmOperation } from '../../contracts/vmOperations';
import { PATCHES } from '../patches';
import { shutdownTimeoutOf, snapshotLimitOf } from '../../domain/requestPolicyRules';
import { apiCall, cleanup, proxmoxTask } from '../activityOptions';
import { OPERATIONS_KEPT } from './bounds';
import { describeOperation, earlierWithId, operationRefusal, type OperationSituation } from './operationRules';
import type { VmRequest } from './request';
import { recordSize, followed, resizedTo } from './size';
import { note, publish } from './timeline';

type Activities = ReturnType<typeof createActivities>;
type ParsedOperation = { caller: OperationCaller; operation: VmOperation };
const look = proxyActivities<Activities>(apiCall);
const task = proxyActivities<Activities>(proxmoxTask);
const follow = proxyActivities<Activities>(cleanup);

/** The day-2 operation under way on the request's VM, if any: the completion and a migration the sync saw wait for it. */
export function runningOperation(record: RequestRecord): OperationRecord | undefined {
  return record.operations?.find((o) => o.state === 'running');
}

/** Refused by the VM's own state (a reboot the caller did not confirm, a disk that would shrink): nothing changed. */
const REFUSED = 'OperationRefused';

/**
 * The day-2 operations of a request's VM, as Updates on the request: each validated against the rules
 * (operationRules.ts, after the lifecycle table), recorded on the timeline with who and why, run as activities that
 * finish or find what an earlier attempt did, and answered once it has ended. Registered before the first await.
 */
export function setOperationHandlers(state: VmRequest): void {
  const { record } = state;
  const situation = (): OperationSituation => ({
    serial: record.serial,
    status: record.status,
    ending: state.endingReason(),
    vmid: record.device.vmid,
    node: record.device.node,
    operations: record.operations ?? [],
    snapshots: record.snapshots ?? [],
    snapshotLimit: snapshotLimitOf(state.policy),
    size: { org: record.request.org, cores: record.request.cores, memoryMiB: record.request.memoryMiB },
    ...(state.policy.autoApprove ? { autoApprove: state.policy.autoApprove } : {}),
  });
  const shutdownTimeoutSeconds = () => shutdownTimeoutOf(state.policy);

  /** The validator: the arguments' shape, then the rules; the handler parses the same arguments again and runs it. */
  const checked = (parse: (arg: unknown) => ParsedOperation) => (arg: unknown) => {
    const { caller, operation } = parse(arg);
    const refusal = operationRefusal(situation(), caller, operation);
    if (refusal) throw new Error(refusal);
  };
  setHandler(powerUpdate, (args) => run(parsePowerArgs(args)), { validator: checked(parsePowerArgs) });
  setHandler(reconfigureUpdate, (args) => run(parseReconfigureArgs(args)), { validator: checked(parseReconfigureArgs) });
  setHandler(snapshotUpdate, (args) => run(parseSnapshotArgs(args)), { validator: checked(parseSnapshotArgs) });
  setHandler(migrateUpdate, (args) => run(parseMigrateArgs(args)), { validator: checked(parseMigrateArgs) });

  async function run({ caller, operation }: ParsedOperation): Promise<OperationResult> {
    const earlier = earlierWithId(situation(), caller.id);
    if (earlier) {
      // The same id again (a retried call): the first one's answer, once it has one.
      await condition(() => earlier.state !== 'running');
      return answer(earlier);
    }
    const op: OperationRecord = {
      id: caller.id,
      what: describeOperation(operation),
      operation,
      by: caller.by,
      role: caller.role,
      ...(caller.note ? { note: caller.note } : {}),
      startedAt: new Date().toISOString(),
      state: 'running',
    };
    const finished = (record.operations ?? []).slice(-(OPERATIONS_KEPT - 1));
    record.operations = [...finished, op];
    note(state, `${op.what} asked${caller.note ? `: ${caller.note}` : ''}`, caller.by);
    try {
      op.outcome = await perform(operation, caller);
      op.state = 'succeeded';
      note(state, `${op.what}: ${op.outcome}`);
    } catch (err) {
      const refused = err instanceof ApplicationFailure && err.type === REFUSED;
      op.state = refused ? 'refused' : 'failed';
      op.outcome = failureMessage(err);
      note(state, `${op.what} ${refused ? 'refused' : 'failed'}: ${op.outcome}`);
    } finally {
      op.endedAt = new Date().toISOString();
    }
    return answer(op);
  }

  function answer(op: OperationRecord): OperationResult {
    // A refusal is the caller's to hear as one (409 at the API), however often it asks.
    if (op.state === 'refused') throw ApplicationFailure.create({ type: REFUSED, nonRetryable: true, message: op.outcome ?? 'refused' });
    return {
      serial: record.serial,
      status: record.status,
      operation: op,
      ...(record.device.node ? { node: record.device.node } : {}),
      ...(powerOf(record) ? { power: powerOf(record) } : {}),
      snapshots: record.snapshots ?? [],
    };
  }

  // The VM's state has one place, the record's device (the sync writes it too); the search attributes follow it.
  const setPower = (power: 'running' | 'stopped') => {
    record.device.state = power;
    publish(state);
  };

  async function perform(operation: VmOperation, caller: OperationCaller): Promise<string> {
    const ref = { serial: record.serial, vmid: record.device.vmid!, node: record.device.node! };
    switch (operation.kind) {
      case 'power': {
        const timeoutSeconds = shutdownTimeoutSeconds();
        switch (operation.action) {
          case 'start':
            await task.startVm(ref);
            setPower('running');
            return 'started';
          case 'stop':
            setPower(await task.stopVm(ref));
            return 'stopped';
          case 'shutdown': {
            const r = await task.shutdownGuest({ ...ref, timeoutSeconds });
            setPower(r.power);
            return r.outcome;
          }
          case 'reboot': {
            const r = await task.rebootVm({ ...ref, timeoutSeconds });
            setPower(r.power);
            return r.outcome;
          }
        }
        break;
      }
      case 'reconfigure': {
        const plan = await look.planReconfigure({ ...ref, cores: operation.cores, memoryMiB: operation.memoryMiB, diskGiB: operation.diskGiB });
        if (plan.refusal) throw refusedBecause(`${plan.refusal.field}: ${plan.refusal.reason}`);
        if (plan.rebootNeeded && !operation.confirmReboot) {
          throw refusedBecause(
            `a reboot is needed to apply ${plan.afterReboot.join(', ')} (${plan.rebootNeeded}); nothing was changed. Send confirm_reboot: true to apply it with a reboot` +
              (plan.live.length ? ` (${plan.live.join(', ')} would apply live)` : ''),
          );
        }
        const done: string[] = [];
        if (Object.keys(plan.set).length || plan.remove.length) {
          const { pending } = await task.applyVmConfig({ ...ref, set: plan.set, remove: plan.remove });
          if (pending.length && powerOf(record) !== 'stopped') {
            const r = await task.rebootVm({ ...ref, timeoutSeconds: shutdownTimeoutSeconds() });
            setPower(r.power);
            done.push(`after a reboot: ${plan.afterReboot.join(', ') || pending.join(', ')} (${r.outcome})`);
          }
        }
        if (plan.grow) await task.growDisk({ ...ref, diskGiB: plan.grow.sizeGiB });
        if (plan.live.length) done.unshift(`live: ${plan.live.join(', ')}`);
        recordSize(state, operation);
        return done.length ? done.join('; ') : 'nothing to change: the VM has that size already';
      }
      case 'snapshot': {
        const snap = { ...ref, name: operation.name };
        switch (operation.action) {
          case 'create': {
            const r = await task.createSnapshot({ ...snap, withRam: operation.withRam ?? false, ...(operation.description ? { description: operation.description } : {}) });
            const { cores, memoryMiB, diskGiB } = record.request;
            const size = patched(PATCHES.revertFollowsConfig) ? { size: { cores, memoryMiB, ...(diskGiB !== undefined ? { diskGiB } : {}) } } : {};
            record.snapshots = [
              ...(record.snapshots ?? []),
              { name: operation.name, takenAt: new Date().toISOString(), by: caller.by, withRam: r.withRam, ...(operation.description ? { description: operation.description } : {}), ...size },
            ];
            return r.withRam ? 'taken, with the guest’s memory' : 'taken';
          }
          case 'revert': {
            const r = await task.revertSnapshot({ ...snap, start: powerOf(record) !== 'stopped' });
            setPower(r.power);
            // The rollback brought the snapshot's config back: the record and the quotas follow what Proxmox reports.
            const back = r.size && patched(PATCHES.revertFollowsConfig) ? resizedTo(record, r.size) : undefined;
            if (back) recordSize(state, followed(record, r.size!));
            return `reverted; the VM is ${r.power}${back ? `; ${back}` : ''}`;
          }
          case 'delete': {
            const r = await task.deleteSnapshot(snap);
            record.snapshots = (record.snapshots ?? []).filter((s) => s.name !== operation.name);
            return r === 'absent' ? 'it was gone from the VM already' : 'deleted';
          }
        }
        break;
      }
      case 'migrate': {
        const from = ref.node;
        const to = operation.target;
        const r = await task.moveVm({ serial: ref.serial, vmid: ref.vmid, from, to });
        record.device.node = to;
        publish(state);
        // Proxmox reads the snippet from the VM's own node at every start: it follows now, not at the next sync.
        const snippet = await follow
          .moveSnippet({ serial: record.serial, name: record.request.name, from, to })
          .then((m) => (m === 'absent' ? `no cloud-init snippet on ${from} to move` : `cloud-init snippet moved to ${to}`))
          .catch((err: Error) => `the cloud-init snippet could not follow (${failureMessage(err)}): the VM cannot start on ${to} until it is there`);
        return `${r.online ? 'moved online' : 'moved'} from ${from} to ${to}; ${snippet}`;
      }
    }
    throw new Error('unreachable');
  }
}

/** running or stopped as far as the request knows (the sync reports Proxmox's words; `paused` counts as running). */
function powerOf(record: RequestRecord): 'running' | 'stopped' | undefined {
  const s = record.device.state;
  return s === undefined ? undefined : s === 'stopped' ? 'stopped' : 'running';
}

function refusedBecause(message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: REFUSED, nonRetryable: true, message });
}
