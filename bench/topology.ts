import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from '@temporalio/worker';
import { connectWorkerToTemporal } from '../src/temporal/workerConnection';
import { buildNowBody, machineLine, pool } from './embeddedBench';
import { treeCpuSeconds } from './processCpu';
import { approveSignal } from './temporalFloor/workflows';
import { startTopology, topologyUnavailable, type TopologyStack } from './topologyStack';
import { startWorldProcess, type WorldProcess } from './worldProcess';

/**
 * Throughput on the production topology, next to Temporal's own floor on the same server in the same run: a Temporal
 * server built from its Go module on PostgreSQL (SQL visibility), the simulated world as its own process with zero
 * latency, the pveflow API and two workers as their own processes with payloads encrypted — compose's shape.
 * - floor: a build's Temporal traffic alone (bench/temporalFloor: a request approved, a child of 7 no-op activities
 *   and 2 phase signals), one worker in this process, no pveflow code;
 * - pveflow: BENCH_BUILDS requests (default 100) submitted and approved through the API, built by the two workers.
 * Prints builds/min and CPU per build (every process: Temporal server, PostgreSQL, the API, the workers, the world,
 * this process) for both, and their ratios: the figure the design holds itself to is builds/min ÷ floor ≥ 0.8.
 * `npm run bench:cost` runs the fair floor (pveflow's own shape, replayed) instead of this fixed one.
 * Run: `npm run bench:topology` (needs `npm run install:temporal-cluster` once).
 */
const N = Number(process.env.BENCH_BUILDS ?? 100);
const FLOOR_BUILDS = Number(process.env.FLOOR_BUILDS ?? N);
const CONCURRENCY = 16;

interface Reading {
  at: number;
  cpu: number;
}

async function main(): Promise<void> {
  const why = topologyUnavailable();
  if (why) throw new Error(why);
  const dir = mkdtempSync(join(tmpdir(), 'pveflow-bench-topology-'));
  const figures: string[] = [machineLine()];
  let world: WorldProcess | undefined;
  let stack: TopologyStack | undefined;
  try {
    world = await startWorldProcess(join(dir, 'world'));
    const s = (stack = await startTopology(dir, world.env));
    const w = world;
    const everything = (): Reading => {
      const t = s.cluster.cpuSeconds();
      return { at: Date.now(), cpu: t.server + t.postgres + treeCpuSeconds([w.pid, ...s.pveflowPids()]) + process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6 };
    };
    const perBuild = (from: Reading, to: Reading, n: number) => ((to.cpu - from.cpu) * 1000) / n;

    // The floor, on this server, now.
    const floorWorker = await Worker.create({
      connection: await connectWorkerToTemporal(s.access),
      taskQueue: 'temporal-floor',
      workflowsPath: require.resolve('./temporalFloor/workflows'),
      activities: { noop: async () => undefined },
    });
    let floorPerMin = 0;
    let floorCpu = 0;
    await floorWorker.runUntil(async () => {
      const ids = Array.from({ length: FLOOR_BUILDS }, (_, i) => `floor-${Date.now()}-${i}`);
      await pool(ids, CONCURRENCY, (id) => s.raw.workflow.start('requestShaped', { taskQueue: 'temporal-floor', workflowId: id }));
      await sleep(2_000);
      const before = everything();
      await pool(ids, CONCURRENCY, (id) => s.raw.workflow.getHandle(id).signal(approveSignal));
      await pool(ids, CONCURRENCY, (id) => s.raw.workflow.getHandle(id).result());
      const after = everything();
      floorPerMin = (FLOOR_BUILDS * 60_000) / (after.at - before.at);
      floorCpu = perBuild(before, after, FLOOR_BUILDS);
    });
    figures.push(
      `floor on this Temporal (${s.cluster.address}, PostgreSQL): ${FLOOR_BUILDS} build-shaped workflows, ${floorPerMin.toFixed(0)} builds/min, CPU per build ${floorCpu.toFixed(0)} ms (server + PostgreSQL + this process)`,
    );

    // pveflow as compose runs it.
    const serials = await pool(
      Array.from({ length: N }, (_, i) => i),
      CONCURRENCY,
      async (i) => (await s.api('POST', '/api/device_requests', buildNowBody(i))).serial as string,
    );
    await sleep(2_000);
    const before = everything();
    await pool(serials, CONCURRENCY, (serial) => s.api('POST', `/api/device_requests/${serial}/approve`, {}));
    for (;;) {
      const { count: done } = await s.raw.workflow.count(`WorkflowType = 'vmBuild' AND ExecutionStatus = 'Completed' AND TaskQueue = 'pveflow'`);
      const { count: bad } = await s.raw.workflow.count(`WorkflowType = 'vmBuild' AND ExecutionStatus != 'Running' AND ExecutionStatus != 'Completed' AND TaskQueue = 'pveflow'`);
      if (bad > 0) throw new Error(`${bad} build(s) did not complete`);
      if (done >= N) break;
      await sleep(250);
    }
    const after = everything();
    const perMin = (N * 60_000) / (after.at - before.at);
    const cpu = perBuild(before, after, N);
    figures.push(
      `pveflow on the topology (API + 2 workers as processes, codec on, world with zero latency): ${N} builds, ${perMin.toFixed(0)} builds/min, CPU per build ${cpu.toFixed(0)} ms (every process: server, PostgreSQL, API, workers, world, this one)`,
    );
    figures.push(`ratio to the floor: builds/min ${(perMin / floorPerMin).toFixed(2)} (target ≥ 0.8), CPU per build ${(cpu / floorCpu).toFixed(2)} (target ≤ 1.25)`);
  } finally {
    await stack?.stop();
    await world?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(figures.join('\n'));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
