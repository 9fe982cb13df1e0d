import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import { classifyText, waitForTask, type PveClient, type TaskOutcome } from '../../clients/pve';
import { ErrorType } from '../../errors';
import type { ActivitySettings } from '../deps';
import { describe, type Subject } from './failures';

/** How a task is waited for. */
export type TaskPolling = Pick<ActivitySettings, 'pollMinMs' | 'pollMaxMs'> & {
  lagRatio?: number;
  /**
   * Keep waiting when the build is cancelled (a worker shutting down still stops the wait): for a task whose undo can
   * only find what it made once the task has ended.
   */
  outlastCancel?: boolean;
};

/**
 * A task's UPID is heartbeated once the task has run this long (then as the SDK's throttle lets through, every 80 % of
 * the heartbeat timeout). A worker that dies sooner leaves a retry without the UPID: every task activity then reads the
 * VM's state first (running, stopped, gone, on its node, its snapshot there; the clone looks for its predecessor's
 * clone), so the retry does not redo what the task did.
 */
export const UPID_HEARTBEAT_AFTER_MS = 1_000;

/**
 * Waits for a Proxmox task while heartbeating its UPID, so that a retry after a worker crash waits on the same
 * task instead of starting a second one.
 */
export function taskOutcome(
  pve: PveClient,
  upid: string,
  poll: TaskPolling,
  /** A preparatory task (a stop before a destroy) is heartbeated under its own key: a retry must not mistake it for the activity's own task. */
  as: 'upid' | 'preparatoryUpid' = 'upid',
): Promise<TaskOutcome> {
  const ctx = Context.current();
  const started = Date.now();
  let beaten = false;
  const beat = () => {
    beaten = true;
    ctx.heartbeat({ [as]: upid });
  };
  return waitForTask(pve, upid, {
    signal: poll.outlastCancel ? stopUnlessCancelled(ctx.cancellationSignal) : ctx.cancellationSignal,
    minPollMs: poll.pollMinMs,
    maxPollMs: poll.pollMaxMs,
    ...(poll.lagRatio === undefined ? {} : { lagRatio: poll.lagRatio }),
    // Not at once: every heartbeat that reaches Temporal is a billable Action, and most tasks (a configuration, a
    // start, a linked clone) end within a second. A retry that finds no UPID checks the VM's state before it acts.
    onPoll: () => {
      if (Date.now() - started >= UPID_HEARTBEAT_AFTER_MS) beat();
    },
  }).catch((err: unknown) => {
    // Stopped waiting (the worker shuts down, the attempt is gone): the retry still learns which task to wait on.
    if (!beaten) beat();
    throw err;
  });
}

/**
 * The activity's cancellation signal without an operator's cancel: it still fires when the worker shuts down or the
 * server no longer knows the attempt (timed out, reset, paused), where a retry resumes on the heartbeated UPID.
 */
function stopUnlessCancelled(activitySignal: AbortSignal): AbortSignal {
  const stop = new AbortController();
  const forward = () => {
    const reason: unknown = activitySignal.reason;
    if (!(reason instanceof CancelledFailure && reason.message === 'CANCELLED')) stop.abort(reason);
  };
  if (activitySignal.aborted) forward();
  else activitySignal.addEventListener('abort', forward, { once: true });
  return stop.signal;
}

/** A failed task as a failure naming what Proxmox logged: lock timeouts stay retryable, the rest is for an operator. */
export function taskFailure(outcome: TaskOutcome, s: Subject, doing: string): ApplicationFailure {
  const cls = classifyText(outcome.exitstatus);
  const retryable = cls === 'lockTimeout' || cls === 'locked' || cls === 'quorum';
  return ApplicationFailure.create({
    type: retryable ? ErrorType.PveTransient : ErrorType.PveTaskFailed,
    nonRetryable: !retryable,
    message: `${doing} for ${describe(s)} failed in Proxmox task ${outcome.upid}: ${outcome.exitstatus}`,
    details: [{ upid: outcome.upid, exitstatus: outcome.exitstatus, log: outcome.logTail }],
  });
}

export async function awaitTask(pve: PveClient, upid: string, s: Subject, doing: string, poll: Pick<ActivitySettings, 'pollMinMs' | 'pollMaxMs'>): Promise<void> {
  const outcome = await taskOutcome(pve, upid, poll);
  if (!outcome.ok) throw taskFailure(outcome, s, doing);
}

/** The UPID an earlier attempt of this activity was waiting on, if any. */
export function resumedUpid(): string | undefined {
  const details = Context.current().info.heartbeatDetails as { upid?: string } | undefined;
  return details?.upid;
}

/**
 * Waits for the task an earlier attempt of this activity started (its UPID was heartbeated), so that a retry after
 * a worker crash never starts a second one. `ok` means that task did the work; a failed one is why this attempt
 * runs at all, so the caller starts anew; undefined means there was none.
 */
export async function earlierTask(pve: PveClient, poll: TaskPolling): Promise<TaskOutcome | undefined> {
  const upid = resumedUpid();
  return upid ? taskOutcome(pve, upid, poll) : undefined;
}
