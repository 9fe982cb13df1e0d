import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

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
