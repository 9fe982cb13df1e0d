import { setTimeout as sleep } from 'node:timers/promises';
import type { PveClient } from './PveClient';
import type { TaskStatus } from './schemas';

export interface TaskOutcome {
  upid: string;
  ok: boolean;
  /** `OK`, `WARNINGS: n`, or the task's error text. */
  exitstatus: string;
  /** The last lines of the task log when the task failed (for the operator). */
  logTail: string[];
}

export interface WaitOptions {
  signal?: AbortSignal;
  /** Called after every poll: activities heartbeat here so that a dead worker is noticed. */
  onPoll?: (status: TaskStatus) => void;
  minPollMs?: number;
  maxPollMs?: number;
  /**
   * Instead of growing each pause by half, keep it at this share of how long the task has run (within min and max):
   * the end of a task that holds something others wait for (a clone slot) is then seen at most that share late.
   */
  lagRatio?: number;
}

/** Success is `OK` or `WARNINGS: n` (UPID.pm status_is_error); anything else is the error text. */
export function isTaskSuccess(exitstatus: string | undefined): boolean {
  return exitstatus === 'OK' || /^WARNINGS: \d+$/.test(exitstatus ?? '');
}

/**
 * Polls a task on the node inside its UPID until it stops, with backoff. Transient poll failures (a proxy hiccup)
 * are the caller's retry policy's business: they propagate, and the retried activity resumes waiting on the same UPID.
 */
export async function waitForTask(pve: PveClient, upid: string, opts: WaitOptions = {}): Promise<TaskOutcome> {
  const minDelay = opts.minPollMs ?? 100;
  const maxDelay = opts.maxPollMs ?? 2_000;
  const started = performance.now();
  let delay = minDelay;
  for (;;) {
    const status = await pve.taskStatus(upid);
    opts.onPoll?.(status);
    if (status.status === 'stopped') {
      const exitstatus = status.exitstatus ?? 'unexpected status';
      const ok = isTaskSuccess(exitstatus);
      const logTail = ok ? [] : await pve.taskLogTail(upid, 10).catch(() => []);
      return { upid, ok, exitstatus, logTail };
    }
    await sleep(delay, undefined, { signal: opts.signal });
    const grown = opts.lagRatio === undefined ? delay * 1.5 : Math.max(minDelay, (performance.now() - started) * opts.lagRatio);
    delay = Math.min(maxDelay, Math.round(grown));
  }
}
