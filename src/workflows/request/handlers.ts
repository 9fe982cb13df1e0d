import { condition, setHandler } from '@temporalio/workflow';
import { approveUpdate, buildPhaseSignal, buildReportSignal, cancelUpdate, completeUpdate, extendUpdate, rebuildUpdate, rejectUpdate, revealCredentialsUpdate, statusQuery, vmDriftSignal } from '../../contracts/messages';
import { parseActor, parseExtension, parseRejection } from '../../contracts/updateArguments';
import { leaseEndRefusal } from '../../domain/requestPolicyRules';
import { refusal, type RequestAction } from '../../domain/requestLifecycle';
import { applyBuildPhase, cancelBuild } from './buildAttempt';
import { revealCredentials, revealRefusal } from './credentials';
import { applyDrift } from './drift';
import { attemptOf, endingReason, periodAhead, statusForCallers, type RequestState } from './state';
import { answer, move, note, publish } from './timeline';

/**
 * The request's messages. Every validator asks the lifecycle table whether the action is allowed in the request's
 * status; what it adds is only what the table cannot know (an action already asked for, who may take the logins).
 * A handler that needs the runbook (a build, a cleanup) records what was asked and answers once the runbook acted.
 */
export function setRequestHandlers(state: RequestState): void {
  const { serial, record } = state;
  const allowed = (action: RequestAction) => {
    const ending = endingReason(state);
    const why = refusal(serial, statusForCallers(state), action);
    if (why) throw new Error(ending ? `${why} (${ending})` : why);
  };

  setHandler(statusQuery, () => record);
  setHandler(
    approveUpdate,
    ({ by, note: why }) => {
      move(state, 'approve', why ? `approved: ${why}` : 'approved', by);
      // The runbook starts the build in this same workflow task when the period has begun; otherwise it waits.
      const start = record.request.period.start;
      return Date.parse(start) <= Date.now() ? answer(state, { build: { attempt: attemptOf(state) + 1, state: 'queued' } }) : answer(state, { buildsAt: start });
    },
    {
      validator: (actor) => {
        parseActor('approve', actor);
        allowed('approve');
      },
    },
  );
  setHandler(
    rejectUpdate,
    ({ by, reason }) => {
      move(state, 'reject', `rejected: ${reason}`, by);
      return answer(state);
    },
    {
      validator: (rejection) => {
        parseRejection('reject', rejection);
        allowed('reject');
      },
    },
  );
  setHandler(
    rebuildUpdate,
    async ({ by }) => {
      const before = attemptOf(state);
      state.asked.rebuild = true;
      note(state, 'rebuild requested', by);
      // Answer with the new build, which the runbook starts in this same workflow task (or the completion that won);
      // before the period's start, with when it builds (the runbook waits for it, as for the first build).
      await condition(() => attemptOf(state) > before || state.cleanupStarted || (record.status === 'Approved' && periodAhead(state)));
      return attemptOf(state) > before || state.cleanupStarted ? answer(state) : answer(state, { buildsAt: record.request.period.start });
    },
    {
      validator: (actor) => {
        parseActor('rebuild', actor);
        allowed('rebuild');
        if (state.asked.rebuild) throw new Error(`a rebuild of ${serial} is already queued`);
      },
    },
  );
  setHandler(
    completeUpdate,
    async ({ by }) => {
      state.asked.complete = true;
      note(state, 'completion requested', by);
      // A running lease or a waiting request turns to Completing within this workflow task: answer with that.
      await condition(() => state.cleanupStarted);
      return answer(state);
    },
    {
      validator: (actor) => {
        parseActor('complete', actor);
        allowed('complete');
        if (state.asked.complete) throw new Error(`completion of ${serial} is already under way`);
      },
    },
  );
  setHandler(
    cancelUpdate,
    async ({ by, note: why }) => {
      state.asked.cancel = true;
      const event = why ? `cancel requested: ${why}` : 'cancel requested';
      if (state.buildScope && record.build) {
        cancelBuild(state, event, by);
        return answer(state);
      }
      // No build yet: the runbook ends the request's wait and marks it Cancelled in this same workflow task.
      note(state, event, by);
      await condition(() => record.status !== 'Approved');
      return answer(state);
    },
    {
      validator: (actor) => {
        parseActor('cancel', actor);
        allowed('cancel');
        if (state.asked.cancel) throw new Error(`a cancel of ${serial} is already under way`);
      },
    },
  );
  setHandler(
    extendUpdate,
    ({ by, newEnd, note: why }) => {
      const from = record.request.period.end;
      record.request = { ...record.request, period: { ...record.request.period, end: newEnd } };
      note(state, `lease end moved from ${from} to ${newEnd}${why ? `: ${why}` : ''}`, by);
      publish(state);
      return answer(state, { periodEnd: newEnd });
    },
    {
      validator: (ext) => {
        const { newEnd } = parseExtension('extend', ext);
        allowed('extend');
        const policyRefusal = leaseEndRefusal(state.policy, record.request.period.start, newEnd, Date.now());
        if (policyRefusal) throw new Error(`cannot extend ${serial} to ${newEnd}: ${policyRefusal.reason}`);
      },
    },
  );
  setHandler(revealCredentialsUpdate, ({ by }) => revealCredentials(state, by), {
    validator: ({ by }) => {
      const why = revealRefusal(state, by);
      if (why) throw new Error(why);
      allowed('revealCredentials');
    },
  });
  setHandler(buildReportSignal, (build) => {
    state.finalBuildReports[build.attempt] = build;
  });
  setHandler(buildPhaseSignal, (phase) => applyBuildPhase(state, phase));
  setHandler(vmDriftSignal, (drift) => applyDrift(state, drift));
}
