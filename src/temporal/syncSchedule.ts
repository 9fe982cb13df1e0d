import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import type { clusterSync } from '../workflows/clusterSync';

export const SYNC_SCHEDULE_ID = 'pveflow-cluster-sync';

/**
 * The Schedule that runs clusterSync every `intervalSeconds`, overlapping runs skipped. Created on first start and
 * brought to the configured interval on every later one, so changing SYNC_INTERVAL_S needs only a restart.
 */
export async function ensureSyncSchedule(client: Client, taskQueue: string, intervalSeconds: number): Promise<void> {
  const spec = { intervals: [{ every: `${intervalSeconds}s` }] };
  const action = { type: 'startWorkflow' as const, workflowType: 'clusterSync' as const, workflowId: 'cluster-sync', taskQueue, args: [] as Parameters<typeof clusterSync> };
  try {
    await client.schedule.create({ scheduleId: SYNC_SCHEDULE_ID, spec, action, policies: { overlap: ScheduleOverlapPolicy.SKIP } });
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    await client.schedule.getHandle(SYNC_SCHEDULE_ID).update((prev) => ({ ...prev, spec, action, policies: { ...prev.policies, overlap: ScheduleOverlapPolicy.SKIP } }));
  }
}
