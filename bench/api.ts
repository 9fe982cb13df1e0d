import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { machineLine, percentile, startBenchStack } from './embeddedBench';

/**
 * Request intake of the embedded default: POST /api/device_requests at 200 per second for 30 s (BENCH_RATE,
 * BENCH_SECONDS), sent by a second process on loopback (bench/apiLoadClient.ts), each answer including the
 * vmRequest workflow start on Temporal (dev server on its SQLite file) and the worker taking its first task.
 * Prints p50/p99/max of the 201 answers. Target: p99 < 50 ms.
 * Run: `npm run bench:api`.
 */
const RATE = Number(process.env.BENCH_RATE ?? 200);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 30);

interface LoadResult {
  latenciesMs: number[];
  statuses: Record<string, number>;
  elapsedS: number;
  maxLagMs: number;
}

async function runLoad(apiUrl: string, apiKey: string): Promise<LoadResult> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'apiLoadClient.ts')], {
    env: { ...process.env, API_URL: apiUrl, API_KEY: apiKey, RATE: String(RATE), SECONDS: String(SECONDS) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const code = await new Promise<number | null>((ok) => child.on('exit', ok));
  if (code !== 0) throw new Error(`the load generator exited with ${code}`);
  return JSON.parse(out.trim().split('\n').at(-1)!) as LoadResult;
}

async function main(): Promise<void> {
  const figures: string[] = [];
  const b = await startBenchStack('zero');
  try {
    const load = await runLoad(b.stack.apiUrl, b.operatorKey);
    const sorted = [...load.latenciesMs].sort((x, y) => x - y);
    const started = (await b.stack.client.workflow.count(`WorkflowType = 'vmRequest'`)).count;
    figures.push(machineLine());
    figures.push(`api intake: POST /api/device_requests at ${RATE}/s for ${SECONDS} s from a second process on loopback (open loop), embedded default, SIM_TIMING=zero`);
    figures.push(`answers: ${JSON.stringify(load.statuses)} in ${load.elapsedS.toFixed(1)} s; ${started} vmRequest workflows started; generator's worst send lag ${load.maxLagMs.toFixed(1)} ms`);
    figures.push(`intake latency (201, workflow started): p50 ${percentile(sorted, 50).toFixed(1)} ms  p99 ${percentile(sorted, 99).toFixed(1)} ms  max ${sorted.at(-1)?.toFixed(1)} ms  (target p99 < 50 ms)`);
  } finally {
    await b.stop();
  }
  // After the stop: the stack's shutdown logs would otherwise bury the figures.
  console.log(figures.join('\n'));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
