/**
 * The client's own, bounded retry: it rides out a short burst of 429/5xx so one hiccup does not cost an activity
 * attempt. Anything longer is the caller's to retry (Temporal activities, with their own backoff).
 */
export interface RetryPolicy {
  /** Total tries including the first, for 5xx and transport failures. Default 3. */
  attempts: number;
  /**
   * Total tries while NetBird answers 429. Higher than `attempts`: a 429 says the server is fine and only asks us
   * to slow down, and it acted on nothing, so waiting costs no correctness. Default 10.
   */
  rateLimitedAttempts: number;
  /** First backoff; doubles per try; each wait is half fixed, half random (jitter). Default 200 ms. */
  baseDelayMs: number;
  /** No single wait is longer, whatever Retry-After says. Default 5 s. */
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 3, rateLimitedAttempts: 10, baseDelayMs: 200, maxDelayMs: 5_000 };

/**
 * How long to wait before try number `attempt + 1` (attempt counts from 1). With Retry-After: at least that long,
 * plus a random share of the backoff, so that clients told the same Retry-After do not all come back in the same
 * instant and empty the limiter's bucket together again.
 */
export function backoffMs(policy: RetryPolicy, attempt: number, retryAfterSeconds: number | undefined, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  if (retryAfterSeconds !== undefined) {
    const asked = Math.max(0, retryAfterSeconds * 1000);
    return Math.round(Math.min(policy.maxDelayMs, asked + random() * Math.min(ceiling, asked)));
  }
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** `Retry-After` as seconds: either delta-seconds or an HTTP date. Undefined when absent or unreadable. */
export function parseRetryAfter(header: string | string[] | undefined, now: number = Date.now()): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, (at - now) / 1000);
}
