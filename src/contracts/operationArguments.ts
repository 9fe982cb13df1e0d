import { requestLimits } from '../domain/requestLimits';
import { POWER_ACTIONS, type PowerAction } from './vmOperations';
import type { CallerRole, MigrateArgs, OperationCaller, ReconfigureArgs, SnapshotArgs, VmOperation } from './vmOperations';

/*
 * The day-2 updates' checks of their arguments, by hand for the reason updateArguments.ts gives (no zod in the
 * workflow bundle). The API's zod schemas (src/contracts/vmOperationSchemas.ts) check the same bounds first and answer 400.
 */

/**
 * Proxmox's own rule for a snapshot name, so that a name is judged before anything starts: the API schema gives
 * `snapname` the format `pve-configid` and maxLength 40, and PVE::JSONSchema's pve-configid is `^[a-z][a-z0-9_-]+$`
 * (case-insensitive: a letter, then one character at least). Its reserved names (current, pending) are refused apart.
 */
export const SNAPSHOT_NAME = /^[a-zA-Z][a-zA-Z0-9_-]{1,39}$/;
export const OPERATION_ID = /^[A-Za-z0-9._:-]{1,100}$/;
/** PVE's `pve-node` format. */
export const NODE_NAME = /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;

const ROLES: CallerRole[] = ['requester', 'admin', 'operator'];

export function parsePowerArgs(arg: unknown): { caller: OperationCaller; operation: VmOperation } {
  const o = caller('power', arg);
  const action = o.action as PowerAction;
  if (!POWER_ACTIONS.includes(action)) throw refusal('power', 'action', `must be one of ${POWER_ACTIONS.join(', ')}`);
  return { caller: callerOf(o), operation: { kind: 'power', action } };
}

export function parseReconfigureArgs(arg: unknown): { caller: OperationCaller; operation: VmOperation } {
  const o = caller('reconfigure', arg) as unknown as ReconfigureArgs & Record<string, unknown>;
  // A resize is bounded as a submission is: one table (issue 27 found a second, looser one here).
  integer('reconfigure', o, 'cores', requestLimits.cores.min, requestLimits.cores.max);
  integer('reconfigure', o, 'memoryMiB', requestLimits.memoryMiB.min, requestLimits.memoryMiB.max);
  integer('reconfigure', o, 'diskGiB', requestLimits.diskGiB.min, requestLimits.diskGiB.max);
  if (o.confirmReboot !== undefined && typeof o.confirmReboot !== 'boolean') throw refusal('reconfigure', 'confirmReboot', 'must be true or false');
  if (o.cores === undefined && o.memoryMiB === undefined && o.diskGiB === undefined) {
    throw refusal('reconfigure', 'cores', 'or memoryMiB or diskGiB must be given: there is nothing to change');
  }
  const operation: VmOperation = {
    kind: 'reconfigure',
    ...(o.cores !== undefined ? { cores: o.cores } : {}),
    ...(o.memoryMiB !== undefined ? { memoryMiB: o.memoryMiB } : {}),
    ...(o.diskGiB !== undefined ? { diskGiB: o.diskGiB } : {}),
    ...(o.confirmReboot ? { confirmReboot: true } : {}),
  };
  return { caller: callerOf(o), operation };
}

export function parseSnapshotArgs(arg: unknown): { caller: OperationCaller; operation: VmOperation } {
  const o = caller('snapshot', arg) as unknown as SnapshotArgs & Record<string, unknown>;
  if (o.action !== 'create' && o.action !== 'revert' && o.action !== 'delete') throw refusal('snapshot', 'action', 'must be one of create, revert, delete');
  if (typeof o.name !== 'string' || !SNAPSHOT_NAME.test(o.name) || o.name === 'current' || o.name === 'pending') {
    throw refusal('snapshot', 'name', 'must start with a letter, hold only letters, digits, - and _, be 2 to 40 characters, and not be current or pending');
  }
  if (o.withRam !== undefined && typeof o.withRam !== 'boolean') throw refusal('snapshot', 'withRam', 'must be true or false');
  if (o.description !== undefined && (typeof o.description !== 'string' || o.description.length > 500)) {
    throw refusal('snapshot', 'description', 'must be a string of at most 500 characters');
  }
  const operation: VmOperation = {
    kind: 'snapshot',
    action: o.action,
    name: o.name,
    ...(o.action === 'create' && o.withRam ? { withRam: true } : {}),
    ...(o.action === 'create' && o.description ? { description: o.description } : {}),
  };
  return { caller: callerOf(o), operation };
}

export function parseMigrateArgs(arg: unknown): { caller: OperationCaller; operation: VmOperation } {
  const o = caller('migrate', arg) as unknown as MigrateArgs & Record<string, unknown>;
  if (typeof o.target !== 'string' || !NODE_NAME.test(o.target)) throw refusal('migrate', 'target', 'must be a node name');
  return { caller: callerOf(o), operation: { kind: 'migrate', target: o.target } };
}

function caller(update: string, arg: unknown): Record<string, unknown> {
  if (typeof arg !== 'object' || arg === null || Array.isArray(arg)) throw new TypeError(`${update}: the argument must be an object`);
  const o = arg as Record<string, unknown>;
  if (typeof o.id !== 'string' || !OPERATION_ID.test(o.id)) throw refusal(update, 'id', 'must be 1 to 100 characters of letters, digits, . _ : -');
  if (typeof o.by !== 'string' || o.by.length < 1 || o.by.length > 200) throw refusal(update, 'by', 'must be a string of 1 to 200 characters');
  if (!ROLES.includes(o.role as CallerRole)) throw refusal(update, 'role', `must be one of ${ROLES.join(', ')}`);
  if (o.note !== undefined && (typeof o.note !== 'string' || o.note.length > 2000)) throw refusal(update, 'note', 'must be a string of at most 2000 characters');
  return o;
}

function callerOf(o: Record<string, unknown>): OperationCaller {
  return { id: o.id as string, by: o.by as string, role: o.role as CallerRole, ...(typeof o.note === 'string' && o.note ? { note: o.note } : {}) };
}

function integer(update: string, o: Record<string, unknown>, field: string, min: number, max: number): void {
  const v = o[field];
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw refusal(update, field, `must be a whole number from ${min} to ${max}`);
}

const refusal = (update: string, field: string, reason: string) => new TypeError(`${update}: ${field} ${reason}`);
