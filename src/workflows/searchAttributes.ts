import type { SearchAttributeUpdatePair } from '@temporalio/common';
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
import type { BuildTask, RequestRecord } from '../contracts/types';

/* The search attributes of each workflow, computed from its state alone: one function per workflow. */

/**
 * How an operator finds a request in Temporal UI, computed from its record alone: upserted whole at each change, so
 * no attribute can disagree with the record. A VM the request no longer has clears VmId, PveNode and VmState.
 */
export function requestSearchAttributes(record: RequestRecord): SearchAttributeUpdatePair[] {
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
  ];
}

/** A build's search attributes, computed from its task: which request, how far, which VM where. */
export function buildSearchAttributes(serial: string, build: BuildTask): SearchAttributeUpdatePair[] {
  return [
    { key: SerialKey, value: serial },
    { key: BuildStatusKey, value: build.state },
    { key: VmIdKey, value: build.vmid ?? null },
    { key: PveNodeKey, value: build.node ?? null },
  ];
}
