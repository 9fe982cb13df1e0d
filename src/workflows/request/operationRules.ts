import type { RequestStatus } from '../../contracts/types';
import type { CallerRole, OperationCaller, OperationRecord, SnapshotRecord, VmOperation } from '../../contracts/vmOperations';
import type { RequestPolicy } from '../../domain/requestPolicy';
import { autoApprovalReason } from '../../domain/requestPolicyRules';
import { refusal } from '../../domain/requestLifecycle';

/**
 * When a day-2 operation may run on a request's VM: plain rules the request's update validators ask, tested without
 * Temporal (test/vmOperationRules.test.ts). In which states, the lifecycle table says (its rows power, reconfigure,
 * snapshot, migrate); these add what the table cannot know: the request on its way out, one operation at a time,
 * migration for operators, snapshots within the request's limit, the same id answered once.
 */

export interface OperationSituation {
  serial: string;
  status: RequestStatus;
  /** Why the request is on its way out (a completion asked for, the period over), if it is: the VM is about to go. */
  ending?: string;
  vmid?: number;
  node?: string;
  /** The operations the request remembers (the running one among them). */
  operations: OperationRecord[];
  snapshots: SnapshotRecord[];
  snapshotLimit: number;
  /** The VM's size as the request states it, and its org: what a resize grows from. */
  size: { org: string; cores: number; memoryMiB: number };
  /** The policy's auto-approval, if any: a requester's resize stays within what it would grant. */
  autoApprove?: RequestPolicy['autoApprove'];
}

const OPERATORS_ONLY: Array<VmOperation['kind']> = ['migrate'];

/** The operation in words, for the timeline and the answers. */
export function describeOperation(op: VmOperation): string {
  switch (op.kind) {
    case 'power':
      return `power ${op.action}`;
    case 'reconfigure': {
      const parts = [
        op.cores !== undefined ? `cores ${op.cores}` : undefined,
        op.memoryMiB !== undefined ? `memory ${op.memoryMiB} MiB` : undefined,
        op.diskGiB !== undefined ? `disk ${op.diskGiB} GiB` : undefined,
      ].filter(Boolean);
      return `reconfigure ${parts.join(', ')}${op.confirmReboot ? ' (reboot confirmed)' : ''}`;
    }
    case 'snapshot':
      return `snapshot ${op.action} ${op.name}${op.action === 'create' && op.withRam ? ' with RAM' : ''}`;
    case 'migrate':
      return `migrate to ${op.target}`;
  }
}

/** The operation this id already asked for, if any: the same id again is the same operation, answered once. */
export function earlierWithId(s: OperationSituation, id: string): OperationRecord | undefined {
  return s.operations.find((o) => o.id === id);
}

/** Why `caller` may not run `op` now, or undefined when it may. */
export function operationRefusal(s: OperationSituation, caller: OperationCaller, op: VmOperation): string | undefined {
  const what = describeOperation(op);
  const earlier = earlierWithId(s, caller.id);
  if (earlier) {
    return sameOperation(earlier.operation, op) ? undefined : `operation id ${caller.id} was already used for ${earlier.what}: a new operation needs a new id`;
  }
  // Completing from the moment the request is ending, whatever the runbook has moved yet: nothing races the cleanup.
  const state = refusal(s.serial, s.ending ? 'Completing' : s.status, op.kind);
  if (state) return `${state} (${what}${s.ending ? `; ${s.ending}` : ''})`;
  if (s.vmid === undefined || s.node === undefined) return `cannot ${what} on request ${s.serial}: it has no VM`;
  const role = roleRefusal(caller.role, op);
  if (role) return role;
  const running = s.operations.find((o) => o.state === 'running');
  if (running) return `cannot ${what} on request ${s.serial}: ${running.what} (id ${running.id}, by ${running.by}, since ${running.startedAt}) is running; one operation at a time`;
  return kindRefusal(s, op) ?? (op.kind === 'reconfigure' ? resizeRefusal(s, caller.role, op) : undefined);
}

/**
 * A requester resizes within what auto-approval would grant: a VM that grows past it is one an approver must agree to,
 * so an admin or an operator resizes it (issue 27: a request auto-approved at 2 cores was grown to 100 by its
 * requester). Shrinking is always theirs; without auto-approval every request had an approver, and the quotas bound
 * the growth.
 */
function resizeRefusal(s: OperationSituation, role: CallerRole, op: Extract<VmOperation, { kind: 'reconfigure' }>): string | undefined {
  const auto = s.autoApprove;
  if (role !== 'requester' || !auto) return undefined;
  const cores = op.cores ?? s.size.cores;
  const memoryMiB = op.memoryMiB ?? s.size.memoryMiB;
  const grows = cores > s.size.cores || memoryMiB > s.size.memoryMiB;
  if (!grows || autoApprovalReason({ autoApprove: auto }, { org: s.size.org, cores, memoryMiB })) return undefined;
  const grant = auto.maxCores > 0 && auto.maxMemoryMiB > 0 ? `at most ${auto.maxCores} cores / ${auto.maxMemoryMiB} MiB` : `no size on its own (only orgs ${auto.orgs.join(', ') || 'none'})`;
  return `cannot reconfigure request ${s.serial} to ${cores} cores / ${memoryMiB} MiB: auto-approval grants ${grant}, and a larger VM needs an approver: an admin or operator may resize it`;
}

export function roleRefusal(role: CallerRole, op: VmOperation): string | undefined {
  if (OPERATORS_ONLY.includes(op.kind) && role !== 'operator') return `${op.kind} is for operators only; the caller is a ${role}`;
  return undefined;
}

function kindRefusal(s: OperationSituation, op: VmOperation): string | undefined {
  switch (op.kind) {
    case 'snapshot': {
      const known = s.snapshots.some((x) => x.name === op.name);
      if (op.action === 'create') {
        if (known) return `request ${s.serial} already has a snapshot ${op.name}: choose another name`;
        if (s.snapshots.length >= s.snapshotLimit) {
          return `request ${s.serial} has ${s.snapshots.length} snapshots, its limit (REQUEST_SNAPSHOT_LIMIT) is ${s.snapshotLimit}: delete one first`;
        }
        return undefined;
      }
      return known ? undefined : `request ${s.serial} has no snapshot ${op.name} (it has ${s.snapshots.map((x) => x.name).join(', ') || 'none'})`;
    }
    case 'migrate':
      return op.target === s.node ? `the VM of request ${s.serial} is on ${op.target} already` : undefined;
    default:
      return undefined;
  }
}

function sameOperation(a: VmOperation, b: VmOperation): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
