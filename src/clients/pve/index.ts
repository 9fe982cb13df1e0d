export { PveClient, encodeParams, type PveClientOptions, type Params } from './PveClient';
export { PveApiError, classify, classifyText, type PveErrorClass } from './PveApiError';
export { waitForTask, isTaskSuccess, type TaskOutcome } from './waitForTask';
export { parseUpid, isUpid, type Upid } from './upid';
export type { ClusterResource, VmConfig, VmStatus, TaskStatus, TaskListEntry, GuestInterfaces, GuestFile, PveNode } from './schemas';
