import { z } from 'zod';
import { validRequestBody } from '../test/support/requests';

/**
 * The load generator of `bench/api.ts`, run as its own process so that its work does not share the API's event loop:
 * POST /api/device_requests open-loop at RATE per second for SECONDS (each request sent at its scheduled moment,
 * whatever the answers before it), after WARMUP unmeasured ones. Prints one JSON line with what it saw.
 */
const env = z
  .object({
    API_URL: z.url(),
    API_KEY: z.string().min(1),
    RATE: z.coerce.number().positive().default(200),
    SECONDS: z.coerce.number().positive().default(30),
    WARMUP: z.coerce.number().int().min(0).default(50),
    /** `1`: every POST carries its own Idempotency-Key, as a careful client would send. */
    IDEMPOTENCY: z.enum(['0', '1']).default('0'),
  })
  .parse(process.env);

async function post(i: number): Promise<{ ms: number; status: number }> {
  const now = Date.now();
  const body = validRequestBody({ name: `load-${i}`, period: { start: new Date(now + 30 * 24 * 3600_000).toISOString(), end: new Date(now + 37 * 24 * 3600_000).toISOString() } });
  const t0 = performance.now();
  try {
    const res = await fetch(`${env.API_URL}/api/device_requests`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${env.API_KEY}`,
        'content-type': 'application/json',
        ...(env.IDEMPOTENCY === '1' ? { 'idempotency-key': `load-${process.pid}-${i}` } : {}),
      },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    await res.arrayBuffer();
    return { ms: performance.now() - t0, status: res.status };
  } catch {
    return { ms: performance.now() - t0, status: 0 };
  }
}

async function main(): Promise<void> {
  for (let i = 0; i < env.WARMUP; i++) await post(-1 - i);
  const total = Math.round(env.RATE * env.SECONDS);
  const interval = 1000 / env.RATE;
  const start = performance.now();
  let maxLagMs = 0;
  const pending: Array<Promise<{ ms: number; status: number }>> = [];
  for (let i = 0; i < total; i++) {
    const due = start + i * interval;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((ok) => setTimeout(ok, wait));
    maxLagMs = Math.max(maxLagMs, performance.now() - due);
    pending.push(post(i));
  }
  const results = await Promise.all(pending);
  const elapsedS = (performance.now() - start) / 1000;
  const statuses: Record<string, number> = {};
  for (const r of results) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
  console.log(JSON.stringify({ latenciesMs: results.filter((r) => r.status === 201).map((r) => r.ms), statuses, elapsedS, maxLagMs }));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
