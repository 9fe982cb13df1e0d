import { defineSearchAttributeKey, SearchAttributeType, type SearchAttributePair, type SearchAttributeUpdatePair, type TypedSearchAttributes } from '@temporalio/common';
import { REQUEST_REVISION, type BuildTask, type RequestRecord } from './types';
import type { ImportTask } from './imageImport';

/**
 * Typed search attributes: how an operator finds a request in Temporal UI (`Serial = "VM-7K2Q9"`,
 * `RequestStatus = "Failed"`, `PveNode = "pve2"`). Registered by the embedded default; on a real cluster with
 * `temporal operator search-attribute create` (see README).
 */
export const SerialKey = defineSearchAttributeKey('Serial', SearchAttributeType.KEYWORD);
export const OrgKey = defineSearchAttributeKey('Org', SearchAttributeType.KEYWORD);
/** The VM's name as requested (`lab-03`): what tells a class's VMs apart in a list. */
export const VmNameKey = defineSearchAttributeKey('VmName', SearchAttributeType.KEYWORD);
export const RequestStatusKey = defineSearchAttributeKey('RequestStatus', SearchAttributeType.KEYWORD);
export const BuildStatusKey = defineSearchAttributeKey('BuildStatus', SearchAttributeType.KEYWORD);
export const VmIdKey = defineSearchAttributeKey('VmId', SearchAttributeType.INT);
export const PveNodeKey = defineSearchAttributeKey('PveNode', SearchAttributeType.KEYWORD);
export const ConsultantsKey = defineSearchAttributeKey('Consultants', SearchAttributeType.KEYWORD_LIST);
/** The VM's state as its request last heard it from clusterSync (`running` until told otherwise). */
export const VmStateKey = defineSearchAttributeKey('VmState', SearchAttributeType.KEYWORD);
/** The request's period, for "which requests run in December" (`PeriodStart <= ... AND PeriodEnd >= ...`). */
export const PeriodStartKey = defineSearchAttributeKey('PeriodStart', SearchAttributeType.DATETIME);
export const PeriodEndKey = defineSearchAttributeKey('PeriodEnd', SearchAttributeType.DATETIME);

/** The class (a lab or an event: N identical VMs submitted together) a request belongs to (`ClassId = "CL-4H7QX"`). */
export const ClassIdKey = defineSearchAttributeKey('ClassId', SearchAttributeType.KEYWORD);

/** Name → type, for registering them with a server. */
export const searchAttributeDefinitions = [SerialKey, OrgKey, RequestStatusKey, BuildStatusKey, VmIdKey, PveNodeKey, ConsultantsKey, PeriodStartKey, PeriodEndKey, VmStateKey, ClassIdKey, VmNameKey];

/*
 * The search attributes of each workflow, computed from its state alone: one function per workflow, which the workflow
 * upserts whole at each change (and a starter may pass at start).
 */

/**
 * How an operator finds a request in Temporal UI, computed from its record alone: upserted whole at each change, so
 * no attribute can disagree with the record. A VM the request no longer has clears VmId, PveNode and VmState.
 */
export function requestSearchAttributes(record: Pick<RequestRecord, 'serial' | 'request' | 'status' | 'build'> & { device: Partial<RequestRecord['device']> }): SearchAttributeUpdatePair[] {
  const { request, device, build } = record;
  return [
    { key: SerialKey, value: record.serial },
    { key: OrgKey, value: request.org },
    { key: VmNameKey, value: request.name },
    { key: ConsultantsKey, value: request.consultants },
    { key: RequestStatusKey, value: record.status },
    { key: PeriodStartKey, value: new Date(request.period.start) },
    { key: PeriodEndKey, value: new Date(request.period.end) },
    // A build the request has started but not heard from yet is, for someone searching, building.
    { key: BuildStatusKey, value: build ? (build.state === 'queued' ? 'building' : build.state) : null },
    { key: VmIdKey, value: device.vmid ?? null },
    { key: PveNodeKey, value: device.node ?? null },
    { key: VmStateKey, value: device.vmid !== undefined ? (device.state ?? null) : null },
    { key: ClassIdKey, value: request.class?.id ?? null },
  ];
}

/** What a request is found by from the moment it is submitted: its search attributes as a Pending request without a VM. */
export function submittedSearchAttributes(request: RequestRecord['request']): SearchAttributePair[] {
  return atStart(requestSearchAttributes({ serial: request.serial, request, status: 'Pending', device: {} }));
}

/** A build's search attributes, computed from its task: which request, how far, which VM where. */
export function buildSearchAttributes(serial: string, build: Pick<BuildTask, 'state' | 'vmid' | 'node'>): SearchAttributeUpdatePair[] {
  return [
    { key: SerialKey, value: serial },
    { key: BuildStatusKey, value: build.state },
    { key: VmIdKey, value: build.vmid ?? null },
    { key: PveNodeKey, value: build.node ?? null },
  ];
}

/**
 * An image import's search attributes: the keys builds use (no new key to register on a cluster), so that
 * `WorkflowType = "imageImport" AND BuildStatus = "failed"` finds the failed imports. Its name is its summary.
 */
export function imageImportSearchAttributes(run: Pick<ImportTask, 'state' | 'node' | 'templateVmid'>): SearchAttributeUpdatePair[] {
  return [
    { key: BuildStatusKey, value: run.state },
    { key: VmIdKey, value: run.templateVmid ?? null },
    { key: PveNodeKey, value: run.node ?? null },
  ];
}

/** What a starter passes at start: the pairs with a value (a search attribute cannot be started unset). */
export function atStart(pairs: SearchAttributeUpdatePair[]): SearchAttributePair[] {
  return pairs.filter((pair): pair is SearchAttributePair => pair.value !== null);
}

/**
 * Whether the attributes a workflow holds already show `pairs` (each set one equal, each unset one absent): a workflow
 * started with its search attributes need not upsert the same again, an upsert being a billable Action.
 */
export function alreadyShown(pairs: SearchAttributeUpdatePair[], held: TypedSearchAttributes): boolean {
  return pairs.every(({ key, value }) => {
    const now = held.get(key as never) as unknown;
    if (value === null) return now === undefined;
    if (value instanceof Date) return now instanceof Date && now.getTime() === value.getTime();
    return JSON.stringify(now) === JSON.stringify(value);
  });
}

/** A completion's search attributes: which request it ends. */
export function completionSearchAttributes(serial: string): SearchAttributeUpdatePair[] {
  return [{ key: SerialKey, value: serial }];
}

/**
 * What every starter of a request's workflow passes (the API, the tools, the tests): its input at today's revision
 * and the search attributes that revision relies on being set at the start.
 */
export function requestStart<P>(request: RequestRecord['request'], policy: P): { args: [{ request: RequestRecord['request']; policy: P; revision: number }]; typedSearchAttributes: SearchAttributePair[] } {
  return { args: [{ request, policy, revision: REQUEST_REVISION }], typedSearchAttributes: submittedSearchAttributes(request) };
}
