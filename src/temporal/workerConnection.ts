import { NativeConnection } from '@temporalio/worker';
import type { TemporalAccess } from './access';

/**
 * A worker's connection to Temporal, with the same address and credentials as the process's clients (access.ts). Apart
 * from access.ts so that a process without a worker (the API alone) never loads the worker's native runtime.
 */
export function connectWorkerToTemporal(access: TemporalAccess): Promise<NativeConnection> {
  return NativeConnection.connect({ ...access.connection });
}
