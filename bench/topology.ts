import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { generateApiKey, hashApiKey } from '../src/api/auth/apiKeys';
import { loadConfig } from '../src/config';
import { connectToTemporal, temporalAccessFrom } from '../src/temporal/access';
import { connectWorkerToTemporal } from '../src/temporal/workerConnection';
import { ensureKeyFile } from '../src/temporal/codec';
import { freePort } from '../test/support/ports';
import { supervise, type Supervised } from '../test/support/supervisor';
import { startTemporalCluster, temporalClusterUnavailable, type RunningTemporalCluster } from '../test/support/temporalCluster';
import type { WorldFile } from '../test/support/worldProcess';
import { buildNowBody, machineLine, pool } from './embeddedBench';
import { approveSignal } from './temporalFloor/workflows';

/**
 * Throughput on the production topology, next to Temporal's own floor on the same server in the same run: a Temporal
 * server built from its Go module on PostgreSQL (SQL visibility), the simulated world as its own process with zero
 * latency, the pveflow API and two workers as their own processes with payloads encrypted — compose's shape.
 * - floor: a build's Temporal traffic alone (bench/temporalFloor: a request approved, a child of 7 no-op activities
 *   and 2 phase signals), one worker in this process, no pveflow code;
 * - pveflow: BENCH_BUILDS requests (default 100) submitted and approved through the API, built by the two workers.
 * Prints builds/min and CPU per build (every process: Temporal server, PostgreSQL, the API, the workers, the world,
 * this process) for both, and their ratios: the figure the design holds itself to is builds/min ÷ floor ≥ 0.8.
 * Run: `npm run bench:topology` (needs `npm run install:temporal-cluster` once).
 */
const N = Number(process.env.BENCH_BUILDS ?? 100);
const FLOOR_BUILDS = Number(process.env.FLOOR_BUILDS ?? N);
const CONCURRENCY = 16;
const root = resolve(__dirname, '..');
const TICK = 100; // USER_HZ

/** CPU seconds (user + system, reaped children included) of processes by pid; 0 for one that is gone. */
function cpuOf(pids: Array<number | undefined>): number {
  let total = 0;
  for (const pid of pids) {
    if (pid === undefined) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total += (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / TICK;
    } catch {
      // gone
    }
  }
  return total;
}

interface Reading {
  at: number;
  cpu: number;
}

async function main(): Promise<void> {
  const why = temporalClusterUnavailable();
  if (why) throw new Error(why);
  const dir = mkdtempSync(join(tmpdir(), 'pveflow-bench-topology-'));
  const figures: string[] = [machineLine()];
  let cluster: RunningTemporalCluster | undefined;
  const processes: Supervised[] = [];
  const world = spawn(process.execPath, ['--import', 'tsx', 'test/support/worldProcess.ts', join(dir, 'world'), 'zero'], { cwd: root, stdio: 'ignore' });
  try {
    mkdirSync(join(dir, 'world'), { recursive: true });
    cluster = await startTemporalCluster({ namespace: 'default', asDeployed: true, postgresSettings: { fsync: 'on', synchronous_commit: 'on', full_page_writes: 'on' } });
    const c = cluster;
    const everything = (): Reading => {
      const t = c.cpuSeconds();
      return { at: Date.now(), cpu: t.server + t.postgres + cpuOf([process.pid, world.pid, ...processes.map((p) => p.pid())]) };
    };
    const perBuild = (from: Reading, to: Reading, n: number) => ((to.cpu - from.cpu) * 1000) / n;

    // The floor, on this server, now.
    // compose's Temporal requires a client certificate (the harness's own CA): the bench presents it, as pveflow does.
    const access = temporalAccessFrom(loadConfig({ TEMPORAL_ADDRESS: c.address, ...c.clientEnv }));
    const connection = await connectToTemporal(access);
    const raw = new Client({ connection });
    const floorWorker = await Worker.create({
      connection: await connectWorkerToTemporal(access),
      taskQueue: 'temporal-floor',
      workflowsPath: require.resolve('./temporalFloor/workflows'),
      activities: { noop: async () => undefined },
    });
    let floorPerMin = 0;
    let floorCpu = 0;
    await floorWorker.runUntil(async () => {
      const ids = Array.from({ length: FLOOR_BUILDS }, (_, i) => `floor-${Date.now()}-${i}`);
      await pool(ids, CONCURRENCY, (id) => raw.workflow.start('requestShaped', { taskQueue: 'temporal-floor', workflowId: id }));
      await sleep(2_000);
      const before = everything();
      await pool(ids, CONCURRENCY, (id) => raw.workflow.getHandle(id).signal(approveSignal));
      await pool(ids, CONCURRENCY, (id) => raw.workflow.getHandle(id).result());
      const after = everything();
      floorPerMin = (FLOOR_BUILDS * 60_000) / (after.at - before.at);
      floorCpu = perBuild(before, after, FLOOR_BUILDS);
    });
    figures.push(
      `floor on this Temporal (${c.address}, PostgreSQL): ${FLOOR_BUILDS} build-shaped workflows, ${floorPerMin.toFixed(0)} builds/min, CPU per build ${floorCpu.toFixed(0)} ms (server + PostgreSQL + this process)`,
    );

    // pveflow as compose runs it.
    const worldFile = await (async () => {
      for (let i = 0; i < 240; i++) {
        if (existsSync(join(dir, 'world', 'world.json'))) return JSON.parse(readFileSync(join(dir, 'world', 'world.json'), 'utf8')) as WorldFile;
        await sleep(250);
      }
      throw new Error('the simulated world did not start');
    })();
    const secrets = join(dir, 'secrets');
    mkdirSync(secrets);
    const operatorKey = generateApiKey();
    writeFileSync(join(secrets, 'api-keys.json'), JSON.stringify({ keys: [{ id: 'bench', role: 'operator', sha256: hashApiKey(operatorKey) }] }));
    const apiPort = await freePort();
    const env = {
      PATH: process.env.PATH!,
      HOME: process.env.HOME ?? '/tmp',
      ...worldFile.env,
      NODE_ENV: 'production',
      TEMPORAL_ADDRESS: c.address,
      ...c.clientEnv,
      TEMPORAL_NAMESPACE: 'default',
      TEMPORAL_TASK_QUEUE: 'pveflow',
      PVEFLOW_CODEC_KEY_FILE: ensureKeyFile(secrets).path,
      CREDENTIAL_KEYS_DIR: join(secrets, 'credential-keys'),
      API_KEYS_FILE: join(secrets, 'api-keys.json'),
      API_HOST: '127.0.0.1',
      API_PORT: String(apiPort),
      SYNC_INTERVAL_S: '86400',
      PVEFLOW_DOCTOR: 'off',
      METRICS_TOKEN: `metrics-${generateApiKey()}`,
      // One key drives the whole load: the per-key write budget is for people, not for a bench.
      API_WRITES_PER_MINUTE: '0',
    };
    processes.push(supervise('src/api/main.ts', env, join(dir, 'api.log')));
    for (const i of [1, 2]) processes.push(supervise('src/worker.ts', env, join(dir, `worker-${i}.log`)));
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    const api = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${apiUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${operatorKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(60_000),
      });
      const text = await res.text();
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
      return JSON.parse(text);
    };
    for (let i = 0; ; i++) {
      const polling = [1, 2].every((w) => existsSync(join(dir, `worker-${w}.log`)) && /worker polling/.test(readFileSync(join(dir, `worker-${w}.log`), 'utf8')));
      const ready =
        polling &&
        (await fetch(`${apiUrl}/readyz`).then(
          (r) => r.ok,
          () => false,
        ));
      if (ready) break;
      if (i > 600) throw new Error('pveflow did not start: see the logs under ' + dir);
      await sleep(500);
    }
    const serials = await pool(
      Array.from({ length: N }, (_, i) => i),
      CONCURRENCY,
      async (i) => (await api('POST', '/api/device_requests', buildNowBody(i))).serial as string,
    );
    await sleep(2_000);
    const before = everything();
    await pool(serials, CONCURRENCY, (s) => api('POST', `/api/device_requests/${s}/approve`, {}));
    for (;;) {
      const { count: done } = await raw.workflow.count(`WorkflowType = 'vmBuild' AND ExecutionStatus = 'Completed' AND TaskQueue = 'pveflow'`);
      const { count: bad } = await raw.workflow.count(`WorkflowType = 'vmBuild' AND ExecutionStatus != 'Running' AND ExecutionStatus != 'Completed' AND TaskQueue = 'pveflow'`);
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
    await connection.close();
  } finally {
    await Promise.allSettled(processes.map((p) => p.stop('SIGTERM')));
    world.kill('SIGTERM');
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(figures.join('\n'));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
