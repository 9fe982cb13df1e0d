import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { startDevServer } from '../src/embedded/devServer';
import { freePort } from '../test/support/ports';
import { cpuMsBetween, cpuSeconds, machineLine, pool, untilDevServerQuiet } from './embeddedBench';
import { approveSignal } from './temporalFloor/workflows';

/**
 * What the embedded default's Temporal (the dev server on its SQLite file, with the same pragmas) costs in CPU for the
 * least a workflow can do, with no pveflow code at all: a start whose workflow waits for a signal, that signal, and an
 * activity that does nothing. These are floors under the targets of `bench:api` and `bench:throughput`: on two
 * cores shared by the dev server and everything else, 200 starts/s needs the dev server's CPU per start well under
 * 10 ms, and 300 builds/min needs a whole build under 400 ms of CPU.
 * Run: `npm run bench:temporal-floor` (FLOOR_STARTS, default 2,000; FLOOR_ACTIVITY_WORKFLOWS × FLOOR_ACTIVITIES, 100 × 10;
 * FLOOR_BUILDS, 200).
 */
const STARTS = Number(process.env.FLOOR_STARTS ?? 2_000);
const ACTIVITY_WORKFLOWS = Number(process.env.FLOOR_ACTIVITY_WORKFLOWS ?? 100);
const ACTIVITIES = Number(process.env.FLOOR_ACTIVITIES ?? 10);
const BUILDS = Number(process.env.FLOOR_BUILDS ?? 200);
const CONCURRENCY = 32;
const TASK_QUEUE = 'temporal-floor';

interface Cost {
  wallS: number;
  devServerMs: number;
  selfMs: number;
}

/** CPU per second of an idle dev server and worker (pollers, timers, metrics): subtracted from every measurement. */
interface IdleCpu {
  devServerMsPerS: number;
  selfMsPerS: number;
}

/**
 * CPU of this process and of the dev server from the start of `work` until the dev server has gone quiet again, so
 * that the tasks still trailing behind the last call are counted too.
 */
async function measure(idle: IdleCpu, work: () => Promise<void>): Promise<Cost> {
  const before = cpuSeconds();
  const t0 = Date.now();
  await work();
  const wallS = (Date.now() - t0) / 1000;
  await untilDevServerQuiet();
  const { selfMs, devServerMs } = cpuMsBetween(before, cpuSeconds());
  const measuredS = (Date.now() - t0) / 1000;
  return { wallS, devServerMs: devServerMs - idle.devServerMsPerS * measuredS, selfMs: selfMs - idle.selfMsPerS * measuredS };
}

async function measureIdle(seconds: number): Promise<IdleCpu> {
  const before = cpuSeconds();
  await sleep(seconds * 1000);
  const { selfMs, devServerMs } = cpuMsBetween(before, cpuSeconds());
  return { devServerMsPerS: devServerMs / seconds, selfMsPerS: selfMs / seconds };
}

/** `fn` for 0 … n − 1, CONCURRENCY at a time, as callers of pveflow's API would. */
async function eachOf(n: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  await pool(
    Array.from({ length: n }, (_, i) => i),
    CONCURRENCY,
    fn,
  );
}

void (async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'pveflow-floor-'));
  const dev = await startDevServer({
    ip: '127.0.0.1',
    port: await freePort(),
    uiPort: await freePort(),
    dbFile: join(dataDir, 'temporal.db'),
    namespace: 'default',
    searchAttributes: [],
    logFile: join(dataDir, 'temporal.log'),
  });
  const figures: string[] = [];
  try {
    const client = new Client({ connection: await Connection.connect({ address: dev.address }) });
    const worker = await Worker.create({
      connection: await NativeConnection.connect({ address: dev.address }),
      taskQueue: TASK_QUEUE,
      workflowsPath: require.resolve('./temporalFloor/workflows'),
      activities: { noop: async () => undefined },
    });
    await worker.runUntil(async () => {
      const start = (id: string) => client.workflow.start('waitsForApproval', { taskQueue: TASK_QUEUE, workflowId: id });
      // The same workflows with no activity first: what their start and completion cost, to subtract.
      const runActivities = (count: number) => () => eachOf(ACTIVITY_WORKFLOWS, (i) => client.workflow.execute('runsActivities', { taskQueue: TASK_QUEUE, workflowId: `acts-${count}-${i}`, args: [count] }));
      await runActivities(1)(); // warm-up
      const idle = await measureIdle(10);
      const bare = await measure(idle, runActivities(0));
      const activities = await measure(idle, runActivities(ACTIVITIES));
      const starts = await measure(idle, () => eachOf(STARTS, (i) => start(`wait-${i}`)));
      const signals = await measure(idle, () => eachOf(STARTS, (i) => client.workflow.getHandle(`wait-${i}`).signal(approveSignal)));
      // Builds as throughput's are measured: the requests started first, then approval → every build closed.
      await eachOf(BUILDS, (i) => client.workflow.start('requestShaped', { taskQueue: TASK_QUEUE, workflowId: `request-${i}` }));
      await untilDevServerQuiet();
      const builds = await measure(idle, async () => {
        await eachOf(BUILDS, (i) => client.workflow.getHandle(`request-${i}`).signal(approveSignal));
        await eachOf(BUILDS, (i) => client.workflow.getHandle(`request-${i}`).result());
      });
      const perStart = starts.devServerMs / STARTS;
      const perSignal = signals.devServerMs / STARTS;
      const roundTrips = ACTIVITY_WORKFLOWS * ACTIVITIES;
      const perActivity = (activities.devServerMs - bare.devServerMs) / roundTrips;
      const selfPerActivity = (activities.selfMs - bare.selfMs) / roundTrips;
      figures.push(machineLine());
      figures.push(
        `temporal floor: dev server on its SQLite file (${dev.address}), trivial workflows, no pveflow code, ${CONCURRENCY} calls at a time; each figure runs until the dev server is quiet, idle CPU (dev server ${idle.devServerMsPerS.toFixed(1)} ms/s, this process ${idle.selfMsPerS.toFixed(1)} ms/s) subtracted`,
      );
      figures.push(
        `start (workflow waits for a signal): ${STARTS} in ${starts.wallS.toFixed(1)} s = ${(STARTS / starts.wallS).toFixed(0)}/s; CPU per start: dev server ${perStart.toFixed(2)} ms, this process (client + worker) ${(starts.selfMs / STARTS).toFixed(2)} ms`,
      );
      figures.push(`signal that completes the workflow: ${STARTS} in ${signals.wallS.toFixed(1)} s; CPU per signal: dev server ${perSignal.toFixed(2)} ms, this process ${(signals.selfMs / STARTS).toFixed(2)} ms`);
      figures.push(
        `activity round trip (no-op, ${ACTIVITY_WORKFLOWS} workflows × ${ACTIVITIES} one after the other, ${activities.wallS.toFixed(1)} s; the same workflows without activities subtracted): CPU per activity: dev server ${perActivity.toFixed(2)} ms, this process ${selfPerActivity.toFixed(2)} ms`,
      );
      const perStartAll = perStart + starts.selfMs / STARTS;
      figures.push(
        `ceilings on 2 cores: ${(2000 / perStart).toFixed(0)} starts/s if the dev server had both cores to itself, ${(2000 / perStartAll).toFixed(0)} with the worker's share (bench:api's target: 200/s with room to spare for p99 < 50 ms)`,
      );
      const perBuild = (builds.devServerMs + builds.selfMs) / BUILDS;
      figures.push(
        `a build's Temporal traffic alone (request approved, child build of 7 no-op activities and 2 phase signals): ${BUILDS} in ${builds.wallS.toFixed(1)} s = ${((BUILDS * 60) / builds.wallS).toFixed(0)} builds/min; CPU per build: dev server ${(builds.devServerMs / BUILDS).toFixed(0)} ms, this process ${(builds.selfMs / BUILDS).toFixed(0)} ms`,
      );
      figures.push(`ceiling on 2 cores for builds with no work in them: ${(120_000 / perBuild).toFixed(0)} builds/min (bench:throughput's target: 300/min, i.e. ≤ 400 ms of CPU per build, the work included)`);
    });
  } finally {
    await dev.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
  console.log(figures.join('\n'));
})().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
