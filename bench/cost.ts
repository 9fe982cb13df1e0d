import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection, WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { buildWorkflowId, requestWorkflowId } from '../src/contracts/workflowIds';
import { NativeConnection, Worker } from '@temporalio/worker';
import { BEAT_MS } from '../src/activities/heartbeating';
import { UPID_HEARTBEAT_AFTER_MS } from '../src/activities/proxmox/runTask';
import { connectWorkerToTemporal } from '../src/temporal/workerConnection';
import { addCounts, billableActions, describeCount, scaleCount, totalOf, zeroCount, type ActionCount, type FirstBeatMs } from './billableActions';
import { buildNowBody, cpuSeconds, machineLine, pool, startBenchStack } from './embeddedBench';
import { describeSteps, floorStepsOf } from './floorShape';
import { treeCpuSeconds } from './processCpu';
import { stepUpdate, type FloorStep } from './temporalFloor/workflows';
import { startTopology, topologyUnavailable } from './topologyStack';
import { startWorldProcess, type WorldProcess } from './worldProcess';

/**
 * What a VM costs on Temporal, next to a fair yardstick, in one command: `npm run bench:cost`.
 *
 * On each Temporal (the embedded default's dev server on SQLite, then the production topology: Temporal on
 * PostgreSQL, the API and two workers as processes, codec on; COST_WHERE=embedded or =topology for one of them):
 * 1. one pveflow request lifecycle (submit → approve → Fulfilled → complete → Completed) is recorded, and its
 *    histories give the floor's shape (bench/floorShape.ts): the same workflows, activities, local activities, timers,
 *    signals and Updates, in the same order, all no-ops (bench/temporalFloor/workflows.ts, `shapedFloor`);
 * 2. COST_ROUNDS rounds (default 2) of COST_LIFECYCLES lifecycles (default 40), floor then pveflow, interleaved on
 *    the same server: builds/min (approval → every build done) and CPU per build and per lifecycle, every process but
 *    the simulated world, which runs as its own process (bench/worldProcess.ts) and is printed apart;
 * 3. Temporal Cloud's billable Actions per lifecycle (bench/billableActions.ts), by kind, counted from the histories
 *    of the first pveflow round, the clone-slots coordinator's share included; and per hour of a running lease.
 * The ratios mean something only on an idle machine: the load average is printed beside them.
 */
const N = Number(process.env.COST_LIFECYCLES ?? 40);
const ROUNDS = Number(process.env.COST_ROUNDS ?? 2);
const WHERE = (process.env.COST_WHERE ?? 'embedded,topology').split(',').map((w) => w.trim());
const CONCURRENCY = 16;
const FLOOR_QUEUE = 'temporal-floor';
const FLOOR_COORDINATOR = 'floor-coordinator';
/** src/worker.ts's polling of Proxmox tasks, the guest agent and NetBird: the first poll that misses sends a heartbeat. */
const POLL_MIN_MS = 250;
/** The activities that beat only after BEAT_MS (src/activities/heartbeating.ts); the waits, after a poll that missed. */
const BEAT_LATE = new Set(['removeFromHa', 'removeSnippet', 'moveSnippet', 'revokeVpnAccess']);
const WAITS = new Set(['waitForGuestIp', 'waitForPeer', 'joinVpn']);
/**
 * When each activity's first heartbeat reaches the server; the rest go by the SDK's throttle. Every other activity
 * with a heartbeat timeout waits on a Proxmox task, whose UPID is heartbeated once the task has run
 * UPID_HEARTBEAT_AFTER_MS (src/activities/proxmox/runTask.ts; at once before the cost cuts of issue 29).
 */
const firstBeatMs: FirstBeatMs = (type) => (BEAT_LATE.has(type) ? BEAT_MS : WAITS.has(type) ? POLL_MIN_MS : UPID_HEARTBEAT_AFTER_MS);
/** The periodic cluster sync (SYNC_INTERVAL_S, default 60 s) is shared by every VM; its Actions per run are counted on one run. */
const SYNC_INTERVAL_S = 60;

/** CPU seconds so far, by who spends them. */
interface CpuNow {
  at: number;
  temporal: number;
  pveflow: number;
  world: number;
  /** This process: the driver, and the floor's worker (in the embedded default also pveflow's API and worker). */
  bench: number;
  /** This process by thread (the embedded default, where the floor's worker or pveflow's runs in it). */
  threads?: Record<string, number>;
}

/** One Temporal with pveflow on it, and what the bench needs of it. */
interface Target {
  label: string;
  /** A client without pveflow's codec: the floor's, and for histories and visibility. */
  client: Client;
  floorConnection: NativeConnection;
  api(method: string, path: string, body?: unknown): Promise<any>;
  cpu(): Omit<CpuNow, 'at'>;
  stop(): Promise<void>;
}

interface Round {
  lifecycles: number;
  buildS: number;
  /** CPU ms per build (approval → every build done) and per lifecycle (submission → every request completed). */
  buildCpuMs: number;
  lifecycleCpuMs: number;
  worldPerLifecycleMs: number;
  /** The world's CPU per build in the build window: not in the ratios, but it shares the machine's cores. */
  worldBuildMs: number;
  /** Of buildCpuMs, what the Temporal server spent (the rest is the workers', the API's and the bench's own). */
  temporalBuildMs: number;
  /** Of buildCpuMs, this process's threads per build (embedded default): where the workers' share goes. */
  threadBuildMs?: Record<string, number>;
}

function selfCpu(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

function reading(t: Target): CpuNow {
  return { at: Date.now(), ...t.cpu() };
}

/** CPU ms between two readings, every process but the world's. */
function cpuMs(a: CpuNow, b: CpuNow): number {
  return (b.temporal - a.temporal + (b.pveflow - a.pveflow) + (b.bench - a.bench)) * 1000;
}

/** `n` pveflow lifecycles through the API, as a user drives them; the serials. */
async function pveflowRound(t: Target, n: number, tag: string): Promise<{ round: Round; serials: string[] }> {
  const start = reading(t);
  const serials = await pool(
    Array.from({ length: n }, (_, i) => i),
    CONCURRENCY,
    async (i) => (await t.api('POST', '/api/device_requests', buildNowBody(i))).serial as string,
  );
  const a = reading(t);
  await pool(serials, CONCURRENCY, (s) => t.api('POST', `/api/device_requests/${s}/approve`, {}));
  // Waited for as the floor's are, by each workflow's result (one long poll each), not by polling visibility: a
  // count every 250 ms would charge the bench's own queries to pveflow's Temporal.
  await pool(serials, CONCURRENCY, (s) => closed(t.client, buildWorkflowId(s, 1), `build of ${s} (${tag})`));
  const b = reading(t);
  await pool(serials, CONCURRENCY, (s) => complete(t, s));
  await pool(serials, CONCURRENCY, (s) => closed(t.client, requestWorkflowId(s), `request ${s} (${tag})`));
  await sleep(2_000); // the tasks trailing behind the last completion
  const end = reading(t);
  return { serials, round: roundOf(n, start, a, b, end) };
}

/** `n` lifecycles of the floor: the recorded request's shape, driven the same way (its Updates in place of approve and complete). */
async function floorRound(t: Target, n: number, steps: FloorStep[], tag: string): Promise<Round> {
  const ids = Array.from({ length: n }, (_, i) => `floor-${tag}-${i}`);
  // After the k-th awaited Update, the request runs the child that follows it: approval's is the build.
  const childAfter: Array<number | undefined> = [];
  let children = 0;
  for (const s of steps) {
    if (s.kind === 'awaitUpdate') childAfter.push(undefined);
    if (s.kind === 'child') {
      children++;
      if (childAfter.length > 0 && childAfter.at(-1) === undefined) childAfter[childAfter.length - 1] = children;
    }
  }
  const start = reading(t);
  await pool(ids, CONCURRENCY, (id) => t.client.workflow.start('shapedFloor', { taskQueue: FLOOR_QUEUE, workflowId: id, args: [steps, FLOOR_COORDINATOR] }));
  const marks: CpuNow[] = [];
  for (const child of childAfter) {
    marks.push(reading(t));
    await pool(ids, CONCURRENCY, (id) => t.client.workflow.getHandle(id).executeUpdate(stepUpdate));
    await pool(ids, CONCURRENCY, (id) => (child === undefined ? Promise.resolve() : resultOf(t.client, `${id}-c${child}`)));
    marks.push(reading(t));
  }
  await pool(ids, CONCURRENCY, (id) => t.client.workflow.getHandle(id).result());
  await sleep(2_000);
  const end = reading(t);
  return roundOf(n, start, marks[0] ?? start, marks[1] ?? end, end);
}

/**
 * Completes a request through the API. Its build has ended, but the request may not have taken the build's result yet
 * (a workflow task later): the API refuses a completion while it is still Configuring, so the bench asks again.
 */
async function complete(t: Target, serial: string): Promise<void> {
  for (let asked = 1; ; asked++) {
    const answer = await t.api('POST', `/api/device_requests/${serial}/complete`, {});
    if (answer?.status === 'Completing' || answer?.status === 'Completed') return;
    if (asked >= 100) throw new Error(`request ${serial} could not be completed: ${JSON.stringify(answer)}`);
    await sleep(100);
  }
}

/**
 * Waits until a pveflow workflow has completed. The bench's client has no codec, so a result it cannot decode is
 * still a completion; a failed workflow fails the round.
 */
async function closed(client: Client, workflowId: string, what: string): Promise<void> {
  try {
    await Promise.race([resultOf(client, workflowId), sleep(10 * 60_000).then(() => Promise.reject(new Error(`${what}: not completed within 10 minutes`)))]);
  } catch (err) {
    if (err instanceof WorkflowFailedError) throw new Error(`${what} failed: ${err.cause?.message ?? err.message}`, { cause: err });
    if (!(err instanceof Error && /payload|encoding|decode|converter/i.test(`${err.name} ${err.message}`))) throw err;
  }
}

/** The result of a workflow that its parent may not have started yet. */
async function resultOf(client: Client, workflowId: string): Promise<unknown> {
  for (;;) {
    try {
      return await client.workflow.getHandle(workflowId).result();
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
      await sleep(100);
    }
  }
}

function roundOf(n: number, start: CpuNow, approved: CpuNow, built: CpuNow, end: CpuNow): Round {
  return {
    lifecycles: n,
    buildS: (built.at - approved.at) / 1000,
    buildCpuMs: cpuMs(approved, built) / n,
    lifecycleCpuMs: cpuMs(start, end) / n,
    worldPerLifecycleMs: ((end.world - start.world) * 1000) / n,
    worldBuildMs: ((built.world - approved.world) * 1000) / n,
    temporalBuildMs: ((built.temporal - approved.temporal) * 1000) / n,
    ...(approved.threads && built.threads ? { threadBuildMs: perThread(approved.threads, built.threads, n) } : {}),
  };
}

/**
 * CPU ms per build of this process's threads, by what they do: the main thread (activities, the API, the driver), the
 * workflow thread (Node's worker threads: workflow code in the SDK's sandbox), the SDK's Rust core (tokio).
 */
function perThread(a: Record<string, number>, b: Record<string, number>, n: number): Record<string, number> {
  const label = (thread: string) => (thread === 'main' ? 'main' : thread === 'node' ? 'workflow' : thread.startsWith('tokio') ? 'core' : 'other');
  const out: Record<string, number> = {};
  for (const [thread, seconds] of Object.entries(b)) out[label(thread)] = (out[label(thread)] ?? 0) + ((seconds - (a[thread] ?? 0)) * 1000) / n;
  return out;
}

const threadsText = (r: Round) =>
  r.threadBuildMs
    ? ` [this process: ${Object.entries(r.threadBuildMs)
        .map(([k, v]) => `${k} ${v.toFixed(0)}`)
        .join(', ')}]`
    : '';

/** The histories of one lifecycle: the request and every child it started (the build, the completion). */
async function lifecycleHistories(client: Client, serial: string) {
  const request = await client.workflow.getHandle(`vm-request-${serial}`).fetchHistory();
  const children = new Map<string, Awaited<ReturnType<typeof fetchHistory>>>();
  const fetchHistory = (id: string) => client.workflow.getHandle(id).fetchHistory();
  for (const e of request.events ?? []) {
    const id = e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId;
    if (id) children.set(id, await fetchHistory(id));
  }
  return { request, children };
}

/** Every run of the coordinators (clone slots, address pool) and how many events each has: their share is counted between two of these. */
async function coordinatorEvents(client: Client): Promise<Map<string, { workflowId: string; events: number }>> {
  const out = new Map<string, { workflowId: string; events: number }>();
  for await (const run of client.workflow.list({ query: `WorkflowType = 'cloneSlots' OR WorkflowType = 'ipPool'` })) {
    const h = await client.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
    out.set(run.runId, { workflowId: run.workflowId, events: h.events?.length ?? 0 });
  }
  return out;
}

/** The coordinators' Actions between two snapshots (their starts are the deployment's, not a VM's: left out). */
async function coordinatorActions(client: Client, before: Map<string, { events: number }>): Promise<ActionCount> {
  let total = zeroCount();
  for await (const run of client.workflow.list({ query: `WorkflowType = 'cloneSlots' OR WorkflowType = 'ipPool'` })) {
    const h = await client.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
    const from = before.get(run.runId)?.events ?? 0;
    const events = (h.events ?? []).slice(from);
    const c = billableActions({ events }, firstBeatMs);
    c['workflow started'] = 0;
    total = addCounts(total, c);
  }
  return total;
}

async function embeddedTarget(world: WorldProcess): Promise<Target> {
  const b = await startBenchStack('zero', world.env);
  const floorConnection = await NativeConnection.connect({ address: b.stack.temporal.address });
  // Without pveflow's codec: the floor's worker has none.
  const connection = await Connection.connect({ address: b.stack.temporal.address });
  return {
    label: 'embedded default (dev server on SQLite; API and worker in this process)',
    client: new Client({ connection }),
    floorConnection,
    api: (method, path, body) => b.api(method, path, body),
    cpu: () => {
      const c = cpuSeconds();
      return { temporal: c.children['temporal'] ?? 0, pveflow: 0, world: treeCpuSeconds([world.pid]), bench: selfCpu(), threads: c.threads };
    },
    async stop() {
      await floorConnection.close();
      await connection.close();
      await b.stop();
    },
  };
}

async function topologyTarget(dir: string, world: WorldProcess): Promise<Target> {
  const s = await startTopology(dir, world.env);
  const floorConnection = await connectWorkerToTemporal(s.access);
  return {
    label: 'production topology (Temporal on PostgreSQL, API + 2 workers as processes, codec on)',
    client: s.raw,
    floorConnection,
    api: s.api,
    cpu: () => {
      const c = s.cluster.cpuSeconds();
      return { temporal: c.server + c.postgres, pveflow: treeCpuSeconds(s.pveflowPids()), world: treeCpuSeconds([world.pid]), bench: selfCpu() };
    },
    async stop() {
      await floorConnection.close();
      await s.stop();
    },
  };
}

async function measure(where: string, dir: string, figures: string[]): Promise<void> {
  const world = await startWorldProcess(join(dir, `world-${where}`));
  let target: Target | undefined;
  try {
    target = where === 'topology' ? await topologyTarget(join(dir, 'topology'), world) : await embeddedTarget(world);
    const t = target;
    const floorWorker = await Worker.create({
      connection: t.floorConnection,
      taskQueue: FLOOR_QUEUE,
      workflowsPath: require.resolve('./temporalFloor/workflows'),
      activities: { noop: async () => undefined },
    });
    await floorWorker.runUntil(async () => {
      await t.client.workflow.start('floorCoordinator', { taskQueue: FLOOR_QUEUE, workflowId: FLOOR_COORDINATOR });
      // 1. One lifecycle recorded: the shape the floor replays.
      const { serials: recorded } = await pveflowRound(t, 1, 'recording');
      const { request, children } = await lifecycleHistories(t.client, recorded[0]!);
      const steps = floorStepsOf(request, (id) => floorStepsOf(children.get(id) ?? { events: [] }, () => []));
      figures.push(`— ${t.label}`);
      figures.push(`shape of one pveflow lifecycle, replayed by the floor with no-ops: ${describeSteps(steps)}`);
      await floorRound(t, Math.min(N, 8), steps, 'warm-up');

      // 2. Interleaved rounds.
      const floor: Round[] = [];
      const ours: Round[] = [];
      let actions: ActionCount | undefined;
      for (let r = 1; r <= ROUNDS; r++) {
        floor.push(await floorRound(t, N, steps, `r${r}`));
        const coordinatorsBefore = await coordinatorEvents(t.client);
        const { round, serials } = await pveflowRound(t, N, `round ${r}`);
        ours.push(round);
        if (r === 1) {
          // 3. Billable Actions, from this round's histories.
          let sum = await coordinatorActions(t.client, coordinatorsBefore);
          for (const s of serials) {
            const h = await lifecycleHistories(t.client, s);
            sum = addCounts(sum, billableActions(h.request, firstBeatMs), ...[...h.children.values()].map((c) => billableActions(c, firstBeatMs)));
          }
          actions = scaleCount(sum, 1 / N);
        }
      }
      for (let r = 0; r < ROUNDS; r++) {
        const f = floor[r]!;
        const p = ours[r]!;
        const perMin = (x: Round) => (x.lifecycles * 60) / x.buildS;
        figures.push(
          `round ${r + 1}: floor ${perMin(f).toFixed(0)} builds/min, CPU per build ${f.buildCpuMs.toFixed(0)} ms (Temporal ${f.temporalBuildMs.toFixed(0)})${threadsText(f)}, per lifecycle ${f.lifecycleCpuMs.toFixed(0)} ms | ` +
            `pveflow ${perMin(p).toFixed(0)} builds/min, CPU per build ${p.buildCpuMs.toFixed(0)} ms (Temporal ${p.temporalBuildMs.toFixed(0)})${threadsText(p)}, per lifecycle ${p.lifecycleCpuMs.toFixed(0)} ms ` +
            `(the simulated world apart: ${p.worldBuildMs.toFixed(0)} ms per build, ${p.worldPerLifecycleMs.toFixed(0)} per lifecycle) | ` +
            `ratios: builds/min ${(perMin(p) / perMin(f)).toFixed(2)} (target ≥ 0.8), CPU per build ${(p.buildCpuMs / f.buildCpuMs).toFixed(2)} (target ≤ 1.25), per lifecycle ${(p.lifecycleCpuMs / f.lifecycleCpuMs).toFixed(2)}`,
        );
      }
      if (actions) {
        figures.push(`billable Actions per lifecycle (Temporal Cloud's definition; mean of ${N}): ${totalOf(actions).toFixed(1)} = ${describeCount(actions, 1)}`);
        if (where === WHERE[0]) figures.push(await perLeaseHour(t.client));
      }
    });
  } finally {
    await target?.stop();
    await world.stop();
  }
}

/**
 * A running lease costs its request nothing per hour (one timer, started once, for the end of the period, and one
 * lease notice before it); the cluster sync costs what one of its runs costs, SYNC_INTERVAL_S apart, shared by every
 * VM. One run's Actions are counted on the run every worker's start triggers (the Schedule's `triggerImmediately`).
 */
async function perLeaseHour(client: Client): Promise<string> {
  let run: ActionCount | undefined;
  for await (const w of client.workflow.list({ query: `WorkflowType = 'clusterSync' AND ExecutionStatus = 'Completed'` })) {
    run = billableActions(await client.workflow.getHandle(w.workflowId, w.runId).fetchHistory(), firstBeatMs);
    break;
  }
  if (!run) return 'per hour of a running lease: no completed cluster sync run to count';
  const perRun = totalOf(run);
  const runsPerHour = 3600 / SYNC_INTERVAL_S;
  const share = (vms: number) => `${vms} VM${vms === 1 ? '' : 's'} ${((runsPerHour * perRun) / vms).toFixed(vms >= 100 ? 1 : 0)}`;
  return `per hour of a running lease: the request itself 0; one cluster sync run ${perRun} Actions (${describeCount(run)}), ${runsPerHour} runs an hour at the default SYNC_INTERVAL_S, per VM: ${[1, 10, 100, 1000].map(share).join(', ')}`;
}

void (async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pveflow-bench-cost-'));
  const figures: string[] = [machineLine(), `bench:cost: ${N} lifecycles per round, ${ROUNDS} round(s), floor then pveflow in each, on ${WHERE.join(' and ')}`];
  try {
    for (const where of WHERE) {
      if (where === 'topology' && topologyUnavailable()) {
        figures.push(`— production topology: skipped (${topologyUnavailable()})`);
        continue;
      }
      await measure(where, dir, figures);
    }
    figures.push(machineLine());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(figures.join('\n'));
})().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
