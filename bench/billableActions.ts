import { temporal } from '@temporalio/proto';

/**
 * Temporal Cloud's billable Actions, counted from workflow histories: what a pveflow request costs on Temporal Cloud,
 * and what a self-hosted Temporal spends the same work on. The definition is Temporal's "Temporal Cloud Actions" page
 * (https://docs.temporal.io/cloud/actions, read 2026-12-07); each rule below names the history event it counts.
 * Queries and rejected Updates leave no event: they are not counted here (pveflow's own reads send queries only when
 * someone looks). Activity heartbeats leave none either: they are estimated (see `heartbeatsOf`).
 */
export const ACTION_KINDS = [
  'workflow started',
  'child workflow started',
  'schedule run',
  'search attributes upserted',
  'activity started',
  'activity retried',
  'local activities (one per workflow task)',
  'local activity retried',
  'activity heartbeat (estimated)',
  'timer started',
  'signal received',
  'update accepted',
] as const;
export type ActionKind = (typeof ACTION_KINDS)[number];
export type ActionCount = Record<ActionKind, number>;

type History = temporal.api.history.v1.IHistory;
type HistoryEvent = temporal.api.history.v1.IHistoryEvent;
const T = temporal.api.enums.v1.EventType;

/**
 * When an activity's first heartbeat reaches the server, by activity type, in ms from its start (absent: it does
 * not heartbeat). The SDK sends the first heartbeat at once and throttles the rest to 80 % of the heartbeat timeout
 * (the Actions page, "Activity Heartbeat recorded"); the history keeps neither, so they are estimated from the
 * activity's running time (started → closed) and this table.
 */
export type FirstBeatMs = (activityType: string) => number | undefined;

export function zeroCount(): ActionCount {
  return Object.fromEntries(ACTION_KINDS.map((k) => [k, 0])) as ActionCount;
}

export function totalOf(count: ActionCount): number {
  return ACTION_KINDS.reduce((sum, k) => sum + count[k], 0);
}

export function addCounts(...counts: ActionCount[]): ActionCount {
  const out = zeroCount();
  for (const c of counts) for (const k of ACTION_KINDS) out[k] += c[k];
  return out;
}

export function scaleCount(count: ActionCount, by: number): ActionCount {
  const out = zeroCount();
  for (const k of ACTION_KINDS) out[k] = count[k] * by;
  return out;
}

const CHANGE_VERSION = 'TemporalChangeVersion';
const SCHEDULED_BY = 'TemporalScheduledById';

/**
 * The billable Actions of one workflow history (one run), by kind. A signal is counted where it is received (the
 * page: "the UI shows a billable action only in the signaled Event history"), so a signal one workflow sends another
 * is counted in the receiver's history; a child's start is counted in its parent (two Actions: the intent and the
 * start), not in the child's own history.
 */
export function billableActions(history: History, firstBeatMs: FirstBeatMs = () => undefined): ActionCount {
  const count = zeroCount();
  const events = history.events ?? [];
  /** Workflow tasks that recorded at least one marker: all of one task's markers are one Action. */
  const tasksWithMarkers = new Set<number>();
  let lastTaskCompleted = 0;
  const scheduled = new Map<number, HistoryEvent>();
  const started = new Map<number, HistoryEvent>();
  for (const e of events) {
    const id = Number(e.eventId ?? 0);
    switch (e.eventType) {
      case T.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED: {
        const a = e.workflowExecutionStartedEventAttributes!;
        if (a.parentWorkflowExecution?.workflowId) break; // counted in the parent, with the intent
        if (a.searchAttributes?.indexedFields?.[SCHEDULED_BY])
          count['schedule run'] += 3; // the schedule's two and the start
        else count['workflow started'] += 1; // a client's start or a continue-as-new
        break;
      }
      case T.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
        count['child workflow started'] += 2;
        break;
      case T.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: {
        const keys = Object.keys(e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields ?? {});
        if (keys.some((k) => k !== CHANGE_VERSION)) count['search attributes upserted'] += 1;
        break;
      }
      case T.EVENT_TYPE_WORKFLOW_TASK_COMPLETED: {
        lastTaskCompleted = id;
        const retries = Number(e.workflowTaskCompletedEventAttributes?.meteringMetadata?.nonfirstLocalActivityExecutionAttempts ?? 0);
        count['local activity retried'] += retries;
        break;
      }
      case T.EVENT_TYPE_MARKER_RECORDED:
        // Every marker (a local activity's, a patch's, a side effect's) is a RecordMarker command: one Action per task.
        tasksWithMarkers.add(lastTaskCompleted);
        break;
      case T.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        count['activity started'] += 1;
        scheduled.set(id, e);
        break;
      case T.EVENT_TYPE_ACTIVITY_TASK_STARTED: {
        const attempt = Number(e.activityTaskStartedEventAttributes?.attempt ?? 1);
        count['activity retried'] += Math.max(0, attempt - 1);
        started.set(Number(e.activityTaskStartedEventAttributes?.scheduledEventId ?? 0), e);
        break;
      }
      case T.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
      case T.EVENT_TYPE_ACTIVITY_TASK_FAILED:
      case T.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
      case T.EVENT_TYPE_ACTIVITY_TASK_CANCELED: {
        const a = e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes ?? e.activityTaskTimedOutEventAttributes ?? e.activityTaskCanceledEventAttributes;
        const schedule = scheduled.get(Number(a?.scheduledEventId ?? 0));
        const start = started.get(Number(a?.scheduledEventId ?? 0));
        if (schedule && start) count['activity heartbeat (estimated)'] += heartbeatsOf(schedule, start, e, firstBeatMs);
        break;
      }
      case T.EVENT_TYPE_TIMER_STARTED:
        count['timer started'] += 1;
        break;
      case T.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
        count['signal received'] += 1;
        break;
      case T.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
        count['update accepted'] += 1;
        break;
    }
  }
  count['local activities (one per workflow task)'] = tasksWithMarkers.size;
  return count;
}

/**
 * Heartbeats of one activity execution that reached the server, estimated: the first `firstBeatMs` after its last
 * attempt started (none if it ended sooner), then one per throttle interval (80 % of its heartbeat timeout) it went on.
 */
function heartbeatsOf(schedule: HistoryEvent, start: HistoryEvent, closed: HistoryEvent, firstBeatMs: FirstBeatMs): number {
  const a = schedule.activityTaskScheduledEventAttributes!;
  const first = firstBeatMs(a.activityType?.name ?? '');
  const timeoutS = Number(a.heartbeatTimeout?.seconds ?? 0) + (a.heartbeatTimeout?.nanos ?? 0) / 1e9;
  if (first === undefined || timeoutS <= 0) return 0;
  const ranMs = msOf(closed.eventTime) - msOf(start.eventTime);
  if (ranMs < first) return 0;
  return 1 + Math.floor((ranMs - first) / (0.8 * timeoutS * 1000));
}

function msOf(t: temporal.api.history.v1.IHistoryEvent['eventTime']): number {
  return Number(t?.seconds ?? 0) * 1000 + Math.floor((t?.nanos ?? 0) / 1e6);
}

/** One line per kind that occurs: `kind n`. */
export function describeCount(count: ActionCount, digits = 0): string {
  return ACTION_KINDS.filter((k) => count[k] > 0)
    .map((k) => `${k} ${count[k].toFixed(digits)}`)
    .join(', ');
}
