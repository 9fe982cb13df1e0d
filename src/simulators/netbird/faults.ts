/**
 * What a test (or an operator trying the embedded stack) can break in the simulated NetBird, by class. Switched at
 * run time with `faults.set(...)` and cleared with `faults.reset()`.
 */
export interface NetbirdFaults {
  /** Added before every API answer. */
  latencyMs: number;
  /** Probability (0..1) that an API request answers 503 instead of being served. */
  errorRate5xx: number;
  /** Booting VMs never show up as peers (agent blocked, wrong management URL): `enrollPeer` returns undefined. */
  peersNeverRegister: boolean;
  /** Deterministic failures: the next N API requests answer `failStatus` instead of being served. */
  failNextRequests: number;
  failStatus: 429 | 500 | 502 | 503 | 504;
  /** Sent as `Retry-After` (seconds) with injected 429/503 answers when set. */
  retryAfterSeconds?: number;
  /** NetBird's API rate limiter switched on (see `NetbirdRateLimit`). */
  rateLimit?: NetbirdRateLimit;
  /**
   * The server accepts every request and does not answer it: never (a wedged server: the connection stays open
   * until the client gives up), or only after `answerAfterMs`, then normally (beyond a client's timeout, a timeout).
   */
  hang?: { answerAfterMs?: number };
  /**
   * NetBird is down. `unavailable`: every request is answered 503 (a proxy in front of a stopped server).
   * `reset`: every connection is reset as it arrives, and requests on kept-alive connections reset theirs (the
   * process is gone); the client sees a transport failure, never an HTTP status.
   */
  down?: 'unavailable' | 'reset';
}

/**
 * NetBird's management API limiter (`NB_API_RATE_LIMITING_ENABLED`, `_RPM`, `_BURST`): one token bucket per personal
 * access token (v0.77.1's auth middleware, before it looks the token up), refilled at a sustained rate up to
 * `burst` tokens; a request without a token is answered 429 with `{"message":"too many requests","code":429}` and
 * is not served (test/netbird-contract.test.ts holds NetBird's own server to it).
 */
export interface NetbirdRateLimit {
  /** Sustained rate (NetBird configures it per minute; NB_API_RATE_LIMITING_RPM / 60). */
  requestsPerSecond: number;
  /** Bucket size: how many requests may arrive at once after a quiet spell. */
  burst: number;
  /**
   * Whether a 429 carries `Retry-After` (whole seconds until the bucket holds a token again). Default true.
   * NetBird's own middleware (management/server/http/middleware/rate_limiter.go) sends none; set false to check
   * that the client still copes with a bare 429.
   */
  retryAfter?: boolean;
}

export const NO_FAULTS: Readonly<NetbirdFaults> = Object.freeze({
  latencyMs: 0,
  errorRate5xx: 0,
  peersNeverRegister: false,
  failNextRequests: 0,
  failStatus: 503,
});

/** The injected failure for this request, if any; consumes one of `failNextRequests`. */
export function injectedFailure(faults: NetbirdFaults, random: () => number = Math.random): number | undefined {
  if (faults.failNextRequests > 0) {
    faults.failNextRequests -= 1;
    return faults.failStatus;
  }
  if (faults.errorRate5xx > 0 && random() < faults.errorRate5xx) return 503;
  return undefined;
}
