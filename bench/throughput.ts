import { buildNowBody, countWorkflows, cpuMsBetween, cpuSeconds, machineLine, percentile, pool, runBench, startBenchStack, waitForCount } from './embeddedBench';

/**
 * Build throughput of the embedded default: N requests (BENCH_BUILDS, default 200) submitted and approved through
 * the API, built by the worker against the simulators with zero simulated latency, so what is measured is
 * pveflow's own orchestration (API, Temporal on SQLite, workflows, activities, HTTP to the simulators).
 * Prints completed builds per minute (first approval → last build closed) and the latency of each build from its
 * approval to its build workflow closing (p50/p95), plus the build workflow's own duration.
 * Run: `npm run bench:throughput` (BENCH_BUILDS=50 for a quick look).
 */
const N = Number(process.env.BENCH_BUILDS ?? 200);
const API_CONCURRENCY = 16;

runBench(
  () => startBenchStack('zero'),
  async (b, figures) => {
    const serials = await pool(
      Array.from({ length: N }, (_, i) => i),
      API_CONCURRENCY,
      async (i) => (await b.api('POST', '/api/device_requests', buildNowBody(i), 201)).serial as string,
    );
    const approvedAt = new Map<string, number>();
    const cpuBefore = cpuSeconds();
    const t0 = Date.now();
    await pool(serials, API_CONCURRENCY, async (serial) => {
      await b.api('POST', `/api/device_requests/${serial}/approve`, {}, 200);
      approvedAt.set(serial, Date.now());
    });
    const approveSecs = (Date.now() - t0) / 1000;
    await waitForCount(
      `${N} builds completed`,
      N,
      async () => {
        const failed = await countWorkflows(b.stack, `WorkflowType = 'vmBuild' AND ExecutionStatus != 'Running' AND ExecutionStatus != 'Completed'`);
        if (failed > 0) throw new Error(`${failed} build(s) did not complete: see Temporal UI`);
        return countWorkflows(b.stack, `WorkflowType = 'vmBuild' AND ExecutionStatus = 'Completed'`);
      },
      30 * 60_000,
      500,
    );
    const cpuAfter = cpuSeconds();

    const latencies: number[] = [];
    const durations: number[] = [];
    let lastClose = 0;
    await pool(serials, API_CONCURRENCY, async (serial) => {
      const d = await b.stack.client.workflow.getHandle(`vm-build-${serial}-1`).describe();
      const closed = d.closeTime!.getTime();
      lastClose = Math.max(lastClose, closed);
      latencies.push(closed - approvedAt.get(serial)!);
      durations.push(closed - d.startTime.getTime());
    });
    latencies.sort((x, y) => x - y);
    durations.sort((x, y) => x - y);
    const minutes = (lastClose - t0) / 60_000;
    figures.push(machineLine());
    figures.push(`throughput: ${N} builds, SIM_TIMING=zero, embedded default (dev server on SQLite, one worker, API in-process)`);
    figures.push(`approvals sent in ${approveSecs.toFixed(1)} s (${API_CONCURRENCY} at a time); first approval → last build closed ${(minutes * 60).toFixed(1)} s`);
    figures.push(`build latency (approval → build closed): p50 ${(percentile(latencies, 50) / 1000).toFixed(2)} s  p95 ${(percentile(latencies, 95) / 1000).toFixed(2)} s`);
    figures.push(`build workflow duration (start → close): p50 ${(percentile(durations, 50) / 1000).toFixed(2)} s  p95 ${(percentile(durations, 95) / 1000).toFixed(2)} s`);
    // CPU per build is what two cores of their own would divide: 120 s of CPU per minute ÷ CPU per build.
    const cpu = cpuMsBetween(cpuBefore, cpuAfter);
    const selfMs = cpu.selfMs / N;
    const devMs = cpu.devServerMs / N;
    figures.push(
      `CPU per build (approval → all closed): worker + API + simulators ${selfMs.toFixed(0)} ms, dev server ${devMs.toFixed(0)} ms; two free cores would allow ≈ ${(120_000 / (selfMs + devMs)).toFixed(0)} builds/min`,
    );
    const byThread = Object.entries(cpuAfter.threads)
      .map(([name, sec]) => [name, ((sec - (cpuBefore.threads[name] ?? 0)) * 1000) / N] as const)
      .filter(([, ms]) => ms >= 5)
      .sort((a, b) => b[1] - a[1]);
    figures.push(`  of which, by thread: ${byThread.map(([name, ms]) => `${name} ${ms.toFixed(0)} ms`).join(', ')}`);
    figures.push(`completed builds per minute: ${(N / minutes).toFixed(0)}  (target ≥ 300, stretch 600)`);
  },
);
