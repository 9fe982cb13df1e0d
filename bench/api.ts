import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { cpuMsBetween, cpuSeconds, machineLine, percentile, runBench, startBenchStack, untilDevServerQuiet } from './embeddedBench';

/**
 * Request intake of the embedded default: POST /api/device_requests at 200 per second for 30 s (BENCH_RATE,
 * BENCH_SECONDS), sent by a second process on loopback (bench/apiLoadClient.ts), each answer including the
 * vmRequest workflow start on Temporal (dev server on its SQLite file) and the worker taking its first task.
 * Prints p50/p99/max of the 201 answers, the CPU each start costs this process and the dev server, and how many
 * workflows were started for callers who got no 201. Target: p99 < 50 ms.
 * Run: `npm run bench:api` (BENCH_IDEMPOTENCY=1: every POST with its own Idempotency-Key).
 */
const RATE = Number(process.env.BENCH_RATE ?? 200);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 30);
const WARMUP = 50;

interface LoadResult {
  latenciesMs: number[];
  statuses: Record<string, number>;
  elapsedS: number;
  maxLagMs: number;
}

async function runLoad(apiUrl: string, apiKey: string): Promise<LoadResult> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'apiLoadClient.ts')], {
    env: { ...process.env, API_URL: apiUrl, API_KEY: apiKey, RATE: String(RATE), SECONDS: String(SECONDS), WARMUP: String(WARMUP), IDEMPOTENCY: process.env.BENCH_IDEMPOTENCY ?? '0' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const code = await new Promise<number | null>((ok) => child.on('exit', ok));
  if (code !== 0) throw new Error(`the load generator exited with ${code}`);
  return JSON.parse(out.trim().split('\n').at(-1)!) as LoadResult;
}

runBench(
  () => startBenchStack('zero'),
  async (b, figures) => {
    // The API shares its event loop with the worker's activities and SDK bridge: how long a ready callback waits.
    const loopDelay = monitorEventLoopDelay({ resolution: 10 });
    const before = cpuSeconds();
    loopDelay.enable();
    const load = await runLoad(b.stack.apiUrl, b.operatorKey);
    loopDelay.disable();
    // The worker takes the first task of the last starts after their 201s: their CPU counts too.
    await untilDevServerQuiet();
    const after = cpuSeconds();
    const sorted = [...load.latenciesMs].sort((x, y) => x - y);
    // Visibility lags the starts a little: count until two readings a second apart agree.
    let started = -1;
    for (let seen = -2; seen !== started; await sleep(1_000)) {
      seen = started;
      started = (await b.stack.client.workflow.count(`WorkflowType = 'vmRequest'`)).count;
    }
    // The load generator is a child too (node): it is the only one besides the dev server.
    const cpu = cpuMsBetween(before, after);
    const devServerS = cpu.devServerMs / 1000;
    const selfS = cpu.selfMs / 1000;
    const perStart = (s: number) => ((s * 1000) / Math.max(1, started)).toFixed(2);
    figures.push(machineLine());
    figures.push(`api intake: POST /api/device_requests at ${RATE}/s for ${SECONDS} s from a second process on loopback (open loop), embedded default, SIM_TIMING=zero`);
    // Every start beyond the 201s is a request its caller was told failed (or never heard about): what must not happen.
    const unanswered = started - WARMUP - (load.statuses['201'] ?? 0);
    figures.push(
      `answers: ${JSON.stringify(load.statuses)} in ${load.elapsedS.toFixed(1)} s; ${started - WARMUP} vmRequest workflows started (${unanswered} of them without a 201); generator's worst send lag ${load.maxLagMs.toFixed(1)} ms`,
    );
    figures.push(
      `CPU for the load, until the dev server was quiet again: API + worker + simulators ${selfS.toFixed(1)} s (${perStart(selfS)} ms per start), dev server ${devServerS.toFixed(1)} s (${perStart(devServerS)} ms per start); ${(load.elapsedS * 2).toFixed(0)} s of 2 cores' time elapsed`,
    );
    figures.push(`API process event-loop delay during the load: p50 ${(loopDelay.percentile(50) / 1e6).toFixed(1)} ms  p99 ${(loopDelay.percentile(99) / 1e6).toFixed(1)} ms  max ${(loopDelay.max / 1e6).toFixed(0)} ms`);
    figures.push(`intake latency (201, workflow started): p50 ${percentile(sorted, 50).toFixed(1)} ms  p99 ${percentile(sorted, 99).toFixed(1)} ms  max ${sorted.at(-1)?.toFixed(1)} ms  (target p99 < 50 ms)`);
  },
);
