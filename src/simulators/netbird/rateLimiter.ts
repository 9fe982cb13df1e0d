import type { NetbirdRateLimit } from './faults';

export type RateDecision = { allowed: true } | { allowed: false; retryAfterSeconds: number };

/**
 * NetBird's limiter, as golang.org/x/time/rate's `Limiter.Allow` per key (the personal access token): a bucket starts full (`burst`),
 * refills continuously at `requestsPerSecond`, and a refused request takes no token (so a client hammering the
 * server does not dig itself deeper).
 */
export class ClientRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    readonly limit: NetbirdRateLimit,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(limit.requestsPerSecond > 0) || !(limit.burst >= 1)) {
      throw new Error(`rate limit needs requestsPerSecond > 0 and burst >= 1, got ${JSON.stringify(limit)}`);
    }
  }

  take(client: string): RateDecision {
    const now = this.now();
    const bucket = this.buckets.get(client) ?? { tokens: this.limit.burst, at: now };
    bucket.tokens = Math.min(this.limit.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.limit.requestsPerSecond);
    bucket.at = now;
    this.buckets.set(client, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true };
    }
    // Retry-After is whole seconds (RFC 9110 delta-seconds): round up, so a client that honours it finds a token.
    return { allowed: false, retryAfterSeconds: Math.ceil((1 - bucket.tokens) / this.limit.requestsPerSecond) };
  }
}
