import { Context } from '@temporalio/activity';

/** Well inside the cleanup preset's 30 s heartbeat timeout, whatever the event loop does meanwhile. */
export const BEAT_MS = 5_000;

/**
 * Runs `work` while heartbeating on a timer. For activities made of calls that each may outlast the heartbeat
 * timeout (a NetBird call riding out 429s for ~50 s): the server then learns of a dead worker within the timeout, and
 * never times out an attempt that is still running — which would start its retry beside it.
 */
export async function whileHeartbeating<T>(work: () => Promise<T>): Promise<T> {
  let ctx: Context;
  try {
    ctx = Context.current();
  } catch {
    return work(); // called as a plain function (a test, a script): there is nobody to heartbeat to
  }
  // The first beat after BEAT_MS, not at once: an activity that ends sooner never needed one, and a heartbeat the SDK
  // flushes after the activity has completed keeps Temporal's time-skipping test server from ever skipping again.
  const timer = setInterval(() => ctx.heartbeat(), BEAT_MS);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}
