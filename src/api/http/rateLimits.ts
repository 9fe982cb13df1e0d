/**
 * Bounds on what one API key (and everyone together) may hold or send. A log stream polls Temporal every
 * API_LOG_POLL_MS for as long as it is open, so streams are counted per key and overall; writes start workflows or
 * send Updates, so each key has a budget per minute. Past a bound the answer is 429 with Retry-After, nothing done.
 */

export type Admission = { ok: true; release: () => void } | { ok: false; retryAfterS: number; detail: string };

/** Open streams, per key and overall. */
export class StreamLimiter {
  private readonly perKey = new Map<string, number>();
  private total = 0;

  constructor(
    private readonly maxPerKey: number,
    private readonly maxTotal: number,
  ) {}

  acquire(keyId: string): Admission {
    const mine = this.perKey.get(keyId) ?? 0;
    if (mine >= this.maxPerKey) {
      return { ok: false, retryAfterS: 5, detail: `key ${keyId} has ${mine} log streams open already (at most ${this.maxPerKey}, API_SSE_MAX_PER_KEY): close one first` };
    }
    if (this.total >= this.maxTotal) {
      return { ok: false, retryAfterS: 5, detail: `${this.total} log streams are open on this API (at most ${this.maxTotal}, API_SSE_MAX): try again shortly` };
    }
    this.perKey.set(keyId, mine + 1);
    this.total++;
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        this.total--;
        const left = (this.perKey.get(keyId) ?? 1) - 1;
        if (left > 0) this.perKey.set(keyId, left);
        else this.perKey.delete(keyId);
      },
    };
  }

  get open(): number {
    return this.total;
  }
}

/**
 * Writes per key: a token bucket of `perMinute` tokens refilled continuously, so a key may send a burst of up to a
 * minute's budget and then one write every 60/perMinute seconds. `perMinute` 0 turns the bound off (benchmarks).
 */
export class WriteLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly perMinute: number,
    private readonly now: () => number = Date.now,
  ) {}

  take(keyId: string): { ok: true } | { ok: false; retryAfterS: number; detail: string } {
    if (this.perMinute <= 0) return { ok: true };
    const now = this.now();
    const perMs = this.perMinute / 60_000;
    const b = this.buckets.get(keyId) ?? { tokens: this.perMinute, at: now };
    b.tokens = Math.min(this.perMinute, b.tokens + (now - b.at) * perMs);
    b.at = now;
    this.buckets.set(keyId, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { ok: true };
    }
    const retryAfterS = Math.max(1, Math.ceil((1 - b.tokens) / perMs / 1000));
    return { ok: false, retryAfterS, detail: `key ${keyId} has used its ${this.perMinute} writes per minute (API_WRITES_PER_MINUTE): retry in ${retryAfterS} s` };
  }
}
