import type { InjectedSinks, WorkerOptions } from '@temporalio/worker';
import { activityMetricsInterceptor, type StageOfActivity } from './activityMetrics';
import type { PveflowMetrics } from './metrics';
import type { Tracing } from './tracing';
import type { BuildOutcomeSinks } from './workflow/buildOutcomes';

/**
 * What metrics and tracing add to a Worker's options: activity interceptors, the workflow interceptor modules
 * (bundled only when the worker bundles its workflows itself: a pre-built bundle keeps what it was built with),
 * and the sinks those modules report through.
 */
export const BUILD_OUTCOMES_MODULE = require.resolve('./workflow/buildOutcomes');

/** `stageOf`: the build stage of each activity the worker runs (src/activities/buildStages.ts). */
export function workerObservabilityOptions(opts: { metrics?: PveflowMetrics; tracing?: Tracing; bundling: boolean; stageOf: StageOfActivity }): Pick<WorkerOptions, 'interceptors' | 'sinks'> {
  const { metrics, tracing } = opts;
  if (!metrics && !tracing) return {};
  const sinks: InjectedSinks<BuildOutcomeSinks> | undefined = metrics ? { pveflowBuilds: { finished: { fn: (_info, outcome) => metrics.builds.inc({ outcome }), callDuringReplay: false } } } : undefined;
  const workflowModules = [...(metrics ? [BUILD_OUTCOMES_MODULE] : []), ...(tracing?.workflowModules ?? [])];
  return {
    interceptors: {
      activity: [...(metrics ? [activityMetricsInterceptor(metrics, opts.stageOf)] : []), ...(tracing?.activityInterceptors ?? [])],
      ...(opts.bundling && workflowModules.length ? { workflowModules } : {}),
    },
    sinks: { ...sinks, ...tracing?.sinks },
  };
}
