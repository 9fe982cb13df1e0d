import { CancelledFailure, type Context } from '@temporalio/activity';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import type { PveflowMetrics, SyncDriftKind } from './metrics';

/**
 * Build stage durations and sync drift, measured where the work happens — in the worker, around each activity —
 * so the workflows stay as they are. A build stage is the time its activities took (retries included, the
 * workflow's own bookkeeping between them not), labelled with the stage names the build reports; the undos a
 * failed or cancelled build runs are the `undo` stage. Which activity belongs to which stage is the activities' own
 * table (src/activities/buildStages.ts, one entry for every activity), handed in by the worker: this floor sits
 * below the activities.
 */
export type StageOfActivity = Readonly<Record<string, string | null>>;

/** What an activity spanning several build stages returns beside its result: the time of each stage after its first. */
export interface LaterStage {
  stage: string;
  ms: number;
}
interface StagedResult {
  laterStages?: LaterStage[];
}

const DRIFT_KIND: Record<string, SyncDriftKind> = { vanished: 'vanished', moved: 'moved', state: 'state_changed', resized: 'resized' };

interface ObservedCluster {
  drifts?: Array<{ drift?: { kind?: string } }>;
  orphanCount?: number;
}

export function activityMetricsInterceptor(metrics: Pick<PveflowMetrics, 'buildStageDuration' | 'syncDrift' | 'syncOrphans'>, stageOf: StageOfActivity): ActivityInterceptorsFactory {
  return (ctx: Context) => ({
    inbound: {
      async execute(input, next) {
        const { activityType, workflowType } = ctx.info;
        const stage = workflowType === 'vmBuild' ? stageOf[activityType] : undefined;
        const started = performance.now();
        let outcome = 'ok';
        let later: LaterStage[] = [];
        try {
          const result = await next(input);
          if (activityType === 'observeCluster') recordSync(metrics, result as ObservedCluster);
          later = (result as StagedResult | undefined)?.laterStages ?? [];
          return result;
        } catch (err) {
          outcome = err instanceof CancelledFailure ? 'cancelled' : 'failed';
          throw err;
        } finally {
          if (stage) {
            // An activity that spans stages (joinVpn: the peer, then the access) says how long its later ones took.
            const total = (performance.now() - started) / 1000;
            for (const l of later) metrics.buildStageDuration.observe({ stage: l.stage, outcome }, l.ms / 1000);
            metrics.buildStageDuration.observe({ stage, outcome }, Math.max(0, total - later.reduce((sum, l) => sum + l.ms, 0) / 1000));
          }
        }
      },
    },
  });
}

function recordSync(metrics: Pick<PveflowMetrics, 'syncDrift' | 'syncOrphans'>, seen: ObservedCluster): void {
  for (const { drift } of seen.drifts ?? []) {
    const kind = DRIFT_KIND[drift?.kind ?? ''];
    if (kind) metrics.syncDrift.inc({ kind });
  }
  const orphans = seen.orphanCount ?? 0;
  if (orphans > 0) metrics.syncDrift.inc({ kind: 'orphan' }, orphans);
  metrics.syncOrphans.set({}, orphans);
}
