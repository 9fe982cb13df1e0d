/** What a test can break in the simulated NetBird, switched per test and reset afterwards. */
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
