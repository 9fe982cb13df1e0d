import type { Client } from '@temporalio/client';
import type { RequestPolicy } from '../domain/requestPolicy';
import type { ApiTimings } from './apiConfig';

/** What every route needs: the Temporal client, where requests run, the policy they get, and the API's bounds. */
export interface ApiContext {
  client: Client;
  taskQueue: string;
  policy: RequestPolicy;
  timings: ApiTimings;
  /** Runs a Temporal call under the API's deadline: no HTTP answer waits on Temporal for ever. */
  temporal<R>(fn: () => Promise<R>): Promise<R>;
}

export function apiContext(deps: Omit<ApiContext, 'temporal'>): ApiContext {
  return {
    ...deps,
    temporal: (fn) => deps.client.withDeadline(Date.now() + deps.timings.temporalTimeoutMs, fn),
  };
}
