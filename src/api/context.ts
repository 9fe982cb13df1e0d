import type { Client } from '@temporalio/client';
import type { RequestPolicy } from '../domain/requestPolicy';
import type { CredentialKeys } from '../credentials/credentialKeys';
import type { ApiTimings } from './apiConfig';

/** What every route needs: the Temporal client, where requests run, the policy they get, and the API's bounds. */
export interface ApiContext {
  client: Client;
  taskQueue: string;
  policy: RequestPolicy;
  timings: ApiTimings;
  /** The store guest credentials are sealed with (shared with the workers); unset: reveals answer 503. */
  credentialKeys?: CredentialKeys;
  /** Runs a Temporal call under the API's deadline: no HTTP answer waits on Temporal for ever. */
  temporal<R>(fn: () => Promise<R>): Promise<R>;
}

export function apiContext(deps: Omit<ApiContext, 'temporal'>): ApiContext {
  return {
    ...deps,
    temporal: (fn) => deps.client.withDeadline(Date.now() + deps.timings.temporalTimeoutMs, fn),
  };
}
