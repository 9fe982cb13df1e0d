import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import type { clusterSync } from '../workflows/clusterSync';
import { syncScheduleId, syncWorkflowId } from '../contracts/workflowIds';

/**
 * The Schedule that runs clusterSync every `intervalSeconds`, overlapping runs skipped. One per pveflow instance (its
 * task queue names it), created on first start and brought to the configured interval on every later one, so
 * changing SYNC_INTERVAL_S needs only a restart.
 */
export async function ensureSyncSchedule(client: Client, taskQueue: string, intervalSeconds: number): Promise<void> {
  const scheduleId = syncScheduleId(taskQueue);
  const spec = { intervals: [{ every: `${intervalSeconds}s` }] };
  const action = { type: 'startWorkflow' as const, workflowType: 'clusterSync' as const, workflowId: syncWorkflowId(taskQueue), taskQueue, args: [] as Parameters<typeof clusterSync> };
  try {
    // The first run at once: the image catalogue (GET /api/images, a submission's `image`) is read from the sync.
    await client.schedule.create({ scheduleId, spec, action, policies: { overlap: ScheduleOverlapPolicy.SKIP }, state: { triggerImmediately: true } });
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    await client.schedule.getHandle(scheduleId).update((prev) => ({ ...prev, spec, action, policies: { ...prev.policies, overlap: ScheduleOverlapPolicy.SKIP } }));
  }
}
