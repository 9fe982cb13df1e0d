import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Polls until `probe` returns a value, or fails with the last value seen. For state that changes in another
 * process (a workflow, a simulator); the bound keeps a broken build from hanging the suite.
 */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `; last error: ${String(last)}` : ''}`);
    await sleep(everyMs);
  }
}
