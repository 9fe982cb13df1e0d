import { isCancellation, proxySinks, workflowInfo, type Sinks, type WorkflowInterceptorsFactory } from '@temporalio/workflow';

/**
 * Workflow-side half of `pveflow_builds_total{outcome}` (bundled as a workflow interceptor module, so vmBuild's own
 * code stays as it is): when a vmBuild run ends, its outcome goes to the worker through a sink. Sinks write
 * nothing to history and are not called during replay, so this changes neither determinism nor history.
 */
export type BuildOutcome = 'completed' | 'failed' | 'cancelled';

export interface BuildOutcomeSinks extends Sinks {
  pveflowBuilds: { finished(outcome: BuildOutcome): void };
}

const { pveflowBuilds } = proxySinks<BuildOutcomeSinks>();

export const interceptors: WorkflowInterceptorsFactory = () => ({
  inbound: [
    {
      async execute(input, next) {
        if (workflowInfo().workflowType !== 'vmBuild') return next(input);
        try {
          const result = await next(input);
          pveflowBuilds.finished('completed');
          return result;
        } catch (err) {
          pveflowBuilds.finished(isCancellation(err) ? 'cancelled' : 'failed');
          throw err;
        }
      },
    },
  ],
});
