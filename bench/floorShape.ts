import { temporal } from '@temporalio/proto';
import type { FloorStep } from './temporalFloor/workflows';

type History = temporal.api.history.v1.IHistory;
const T = temporal.api.enums.v1.EventType;

/**
 * The shape of a workflow as its history shows it, as steps the fair floor replays with no-ops
 * (bench/temporalFloor/workflows.ts, `shapedFloor`): its activities, local activities, timers, the signals it sends
 * (to its parent, or to a coordinator, and whether it waits for the coordinator's answer), the Updates it waits for,
 * and its children, each with its own shape (`childSteps`, by workflow id). Derived from a real pveflow lifecycle's
 * histories, so that the floor cannot drift from what pveflow does. Search attribute upserts are left out: the floor's
 * Temporal has no search attributes of its own, and they are pveflow's choice of what to show (counted among the
 * billable Actions, bench/billableActions.ts).
 */
export function floorStepsOf(history: History, childSteps: (workflowId: string) => FloorStep[]): FloorStep[] {
  const events = history.events ?? [];
  const parent = events[0]?.workflowExecutionStartedEventAttributes?.parentWorkflowExecution?.workflowId ?? undefined;
  const fired = new Set(events.filter((e) => e.eventType === T.EVENT_TYPE_TIMER_FIRED).map((e) => e.timerFiredEventAttributes?.timerId));
  const steps: FloorStep[] = [];
  for (const e of events) {
    switch (e.eventType) {
      case T.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        steps.push({ kind: 'activity' });
        break;
      case T.EVENT_TYPE_MARKER_RECORDED:
        if (e.markerRecordedEventAttributes?.markerName === 'core_local_activity') steps.push({ kind: 'local' });
        break;
      case T.EVENT_TYPE_TIMER_STARTED:
        steps.push({ kind: 'timer', fires: fired.has(e.timerStartedEventAttributes?.timerId) });
        break;
      case T.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED: {
        const to = e.signalExternalWorkflowExecutionInitiatedEventAttributes?.workflowExecution?.workflowId;
        steps.push(parent !== undefined && to === parent ? { kind: 'signalParent' } : { kind: 'signalCoordinator', ask: false });
        break;
      }
      case T.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED: {
        // A child hears only its coordinator (a request hears its children, whose signals are their own steps): the
        // answer to the latest unanswered signal it sent the coordinator.
        if (parent === undefined) break;
        for (let i = steps.length - 1; i >= 0; i--) {
          const s = steps[i]!;
          if (s.kind === 'signalCoordinator' && !s.ask) {
            s.ask = true;
            break;
          }
        }
        break;
      }
      case T.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
        steps.push({ kind: 'awaitUpdate' });
        break;
      case T.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
        steps.push({ kind: 'child', steps: childSteps(e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId ?? '') });
        break;
    }
  }
  return steps;
}

/** `activity ×3, local, …`: a shape in one line, for the bench's output. */
export function describeSteps(steps: FloorStep[]): string {
  const parts: string[] = [];
  for (const s of steps) {
    const label = s.kind === 'child' ? `child(${describeSteps(s.steps)})` : s.kind === 'timer' ? `timer${s.fires ? '' : ' (cancelled)'}` : s.kind === 'signalCoordinator' ? (s.ask ? 'ask' : 'tell') : s.kind;
    const last = parts.at(-1);
    const m = last?.match(/^(.*?)(?: ×(\d+))?$/);
    if (m && m[1] === label && s.kind !== 'child') parts[parts.length - 1] = `${label} ×${Number(m[2] ?? 1) + 1}`;
    else parts.push(label);
  }
  return parts.join(', ');
}
