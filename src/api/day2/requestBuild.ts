import { buildStatusQuery } from '../../contracts/messages';
import type { BuildTask, RequestRecord } from '../../contracts/types';
import type { ApiContext } from '../http/context';

const FINISHED: ReadonlySet<BuildTask['state']> = new Set(['completed', 'failed', 'cancelled']);

/** Whether a build has ended: its request's record then holds its final task (log, leftovers, times). */
export const buildFinished = (build: BuildTask) => FINISHED.has(build.state);

export interface CurrentBuild {
  /** The latest build as its one owner has it now: its own workflow while it runs, the request's record after. */
  build?: BuildTask;
  /** The build runs but could not be asked (not started yet, or just ended): `build` is the request's copy. */
  unknown?: boolean;
}

/**
 * The one way the API reads a request's build. A running build owns its stage, progress and log (its `buildStatus`
 * query); once it ended it handed them to its request, whose record holds them from then on.
 */
export async function currentBuild(ctx: ApiContext, record: RequestRecord): Promise<CurrentBuild> {
  const build = record.build;
  if (!build || buildFinished(build)) return { build };
  try {
    return { build: await ctx.temporal(() => ctx.client.workflow.getHandle(build.workflowId).query(buildStatusQuery)) };
  } catch {
    return { build, unknown: true };
  }
}

/** The request's record with its latest build as its owner has it now. */
export async function withCurrentBuild(ctx: ApiContext, record: RequestRecord): Promise<RequestRecord> {
  const { build } = await currentBuild(ctx, record);
  return build ? { ...record, build } : record;
}
