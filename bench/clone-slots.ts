import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { cloneSlotsQuery, releaseCloneSlotSignal, releasePlacementSignal, requestCloneSlotSignal } from '../src/contracts/cloneSlotsMessages';
import { searchAttributeDefinitions } from '../src/contracts/searchAttributes';
import { cloneSlotsWorkflowId } from '../src/contracts/workflowIds';
import { requireTemporalBinary } from '../src/temporal/binaries';
import { ensureCoordinators } from '../src/temporal/coordinators';

/**
 * The clone-slots coordinator under a queue: N asks (BENCH_ASKS, default 200) for one key limited to 2, each released
 * as soon as it is granted, on the dev server. Prints the coordinator's workflow task durations: the in-process gate
 * it replaced existed because 200 waiting Updates made the slots workflow's tasks exceed 5 s.
 * Run: `npx tsx bench/clone-slots.ts`.
 */
const N = Number(process.env.BENCH_ASKS ?? 200);

async function main(): Promise<void> {
  const env = await TestWorkflowEnvironment.createLocal({
    server: { executable: { type: 'existing-path', path: requireTemporalBinary('temporal') }, searchAttributes: searchAttributeDefinitions },
  });
  const taskQueue = 'bench-clone-slots';
  const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowsPath: require.resolve('../src/workflows') });
  await worker.runUntil(async () => {
    await ensureCoordinators(env.client, taskQueue);
    const slots = env.client.workflow.getHandle(cloneSlotsWorkflowId(taskQueue));
    // Holders that exist and take the grant signal: workflows on a task queue nobody polls.
    const holders = await Promise.all(Array.from({ length: N }, (_, i) => env.client.workflow.start('cloneSlots', { workflowId: `bench-holder-${i}`, taskQueue: 'bench-nobody', args: [{}] })));
    const t0 = Date.now();
    await Promise.all(
      holders.map((h) =>
        slots.signal(requestCloneSlotSignal, {
          holder: h.workflowId,
          keys: ['storage/ceph'],
          limits: { 'storage/ceph': 2 },
          offers: [
            { node: 'pve1', freeCpu: 10, freeMem: 0 },
            { node: 'pve2', freeCpu: 10, freeMem: 0 },
          ],
          need: { cpu: 1, mem: 0 },
          running: [],
          ttlMs: 600_000,
        }),
      ),
    );
    const served = new Set<string>();
    let maxWaiting = 0;
    while (served.size < N) {
      const view = await slots.query(cloneSlotsQuery);
      maxWaiting = Math.max(maxWaiting, view.waiting.length);
      for (const { holder } of view.held.filter((h) => !served.has(h.holder))) {
        served.add(holder);
        await slots.signal(releaseCloneSlotSignal, { holder, vmid: 1 });
        await slots.signal(releasePlacementSignal, { holder });
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const wallMs = Date.now() - t0;
    const history = await slots.fetchHistory();
    const startedAt = new Map<string, number>();
    const taskMs: number[] = [];
    for (const e of history.events ?? []) {
      const at = Number(e.eventTime?.seconds ?? 0) * 1000 + Math.floor((e.eventTime?.nanos ?? 0) / 1e6);
      if (e.workflowTaskStartedEventAttributes) startedAt.set(String(e.eventId), at);
      const completed = e.workflowTaskCompletedEventAttributes;
      if (completed) taskMs.push(at - (startedAt.get(String(completed.startedEventId)) ?? at));
    }
    taskMs.sort((a, b) => a - b);
    const at = (p: number) => taskMs[Math.min(taskMs.length - 1, Math.floor(taskMs.length * p))];
    console.log(
      `${N} asks, limit 2 on one key: ${maxWaiting} waiting at the peak; all served in ${wallMs} ms; ${taskMs.length} workflow tasks, ` +
        `start → complete p50 ${at(0.5)} ms, p95 ${at(0.95)} ms, max ${taskMs.at(-1)} ms; ${history.events?.length} history events`,
    );
    await Promise.all(holders.map((h) => h.terminate()));
    await slots.terminate();
  });
  await env.teardown();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
