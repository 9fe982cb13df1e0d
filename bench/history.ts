import { temporal } from '@temporalio/proto';
import { runLifecycles } from './lifecycle';
import { machineLine, percentile, pool, runBench, startBenchStack } from './embeddedBench';

/**
 * History events and bytes per build (the vmBuild workflow) and per request lifecycle (vmRequest from submission to
 * completion, plus its vmBuild and vmCompletion children), measured on real executions of the embedded default.
 * Bytes are the encoded protobuf History, as the server stores and replays it (payloads encrypted, as by default).
 * Run: `npm run bench:history` (BENCH_BUILDS, default 20).
 */
const N = Number(process.env.BENCH_BUILDS ?? 20);

runBench(
  () => startBenchStack('zero'),
  async (b, figures) => {
    const { serials } = await runLifecycles(b, N);
    const sizeOf = async (workflowId: string) => {
      const history = await b.stack.client.workflow.getHandle(workflowId).fetchHistory();
      return { events: history.events?.length ?? 0, bytes: temporal.api.history.v1.History.encode(history).finish().length, tasks: workflowTasks(history) };
    };
    const rows = await pool(serials, 8, async (s) => {
      const [request, build, completion] = await Promise.all([sizeOf(`vm-request-${s}`), sizeOf(`vm-build-${s}-1`), sizeOf(`vm-completion-${s}`)]);
      return { request, build, completion };
    });
    const line = (label: string, pick: (r: (typeof rows)[number]) => { events: number; bytes: number; tasks: number }) => {
      const events = rows.map((r) => pick(r).events).sort((x, y) => x - y);
      const kb = rows.map((r) => pick(r).bytes / 1024).sort((x, y) => x - y);
      const tasks = rows.map((r) => pick(r).tasks).sort((x, y) => x - y);
      figures.push(
        `${label.padEnd(34)} events p50 ${percentile(events, 50)}  max ${events.at(-1)}   size p50 ${percentile(kb, 50).toFixed(1)} KB  max ${kb.at(-1)!.toFixed(1)} KB   workflow tasks p50 ${percentile(tasks, 50)}  max ${tasks.at(-1)}`,
      );
    };
    const sum = (a: { events: number; bytes: number; tasks: number }, ...more: Array<{ events: number; bytes: number; tasks: number }>) =>
      more.reduce((acc, x) => ({ events: acc.events + x.events, bytes: acc.bytes + x.bytes, tasks: acc.tasks + x.tasks }), a);
    // The coordinators' share (clone slots, address pool): all their runs, divided over the builds.
    let coordinator = { events: 0, tasks: 0 };
    for await (const run of b.stack.client.workflow.list({ query: `WorkflowType = 'cloneSlots' OR WorkflowType = 'ipPool'` })) {
      const history = await b.stack.client.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
      coordinator = { events: coordinator.events + (history.events?.length ?? 0), tasks: coordinator.tasks + workflowTasks(history) };
    }
    figures.push(machineLine());
    figures.push(`history per execution over ${N} lifecycles (submit → approve → fulfilled → complete), SIM_TIMING=zero:`);
    line('vmCompletion', (r) => r.completion);
    line('vmRequest (whole lifecycle)', (r) => r.request);
    line('per build (vmBuild)', (r) => r.build);
    line('per request lifecycle (all three)', (r) => sum(r.request, r.build, r.completion));
    figures.push(`coordinators (clone slots, address pool), per build: ${(coordinator.events / N).toFixed(1)} events, ${(coordinator.tasks / N).toFixed(1)} workflow tasks`);
    figures.push('target: ≤ 100 events and ≤ 64 KB per workflow history');
  },
);

/** Workflow tasks completed: each is a round trip worker ↔ server and a replay step of the workflow. */
function workflowTasks(history: temporal.api.history.v1.IHistory): number {
  return (history.events ?? []).filter((e) => e.eventType === temporal.api.enums.v1.EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED).length;
}
