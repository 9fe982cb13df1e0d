import type { Client } from '@temporalio/client';
import type { RequestPolicy } from '../../domain/requestPolicy';
import type { QuotaConfig } from '../../domain/quotas';
import type { CredentialKeys } from '../../credentials/credentialKeys';
import type { ApiTimings } from './apiConfig';
import type { RequestChoiceSettings } from '../intake/requestChoices';
import { StreamLimiter, WriteLimiter } from './rateLimits';
import { InFlightCalls } from './inFlightCalls';
import { processPageTokenKey } from '../reads/requestList';

/** What every route needs: the Temporal client, where requests run, the policy they get, and the API's bounds. */
export interface ApiContext {
  client: Client;
  taskQueue: string;
  policy: RequestPolicy;
  /** Per org, enforced at submission and approval (quotaUse.ts); empty: none. */
  quotas: QuotaConfig;
  timings: ApiTimings;
  /** Open log streams per key and overall; writes per key. */
  streams: StreamLimiter;
  writes: WriteLimiter;
  /** The store guest credentials are sealed with (shared with the workers); unset: reveals answer 503. */
  credentialKeys?: CredentialKeys;
  /** The image catalogue's configuration, the allowed networks and the limits of a request's choices. */
  choices: RequestChoiceSettings;
  /** The key of the list's page tokens' MAC (requestList.ts). */
  pageTokenKey: Buffer;
  /**
   * Runs a Temporal call under the API's deadline (no HTTP answer waits on Temporal for ever), counted among the calls
   * in flight that the API's stop waits for (inFlightCalls.ts). Every Temporal call of the API goes through here;
   * `timeoutMs` for the one wait that has a deadline of its own (a day-2 operation's outcome).
   */
  temporal<R>(fn: () => Promise<R>, timeoutMs?: number): Promise<R>;
}

export function apiContext(deps: Omit<ApiContext, 'temporal' | 'streams' | 'writes' | 'pageTokenKey'> & { pageTokenKey?: Buffer }, inFlight = new InFlightCalls()): ApiContext {
  return {
    ...deps,
    pageTokenKey: deps.pageTokenKey ?? processPageTokenKey(),
    streams: new StreamLimiter(deps.timings.maxStreamsPerKey, deps.timings.maxStreams),
    writes: new WriteLimiter(deps.timings.writesPerMinute),
    temporal: (fn, timeoutMs = deps.timings.temporalTimeoutMs) => inFlight.run(() => deps.client.withDeadline(Date.now() + timeoutMs, fn)),
  };
}
