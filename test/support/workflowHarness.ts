import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, type WorkflowBundle } from '@temporalio/worker';
import { loadConfig } from '../../src/config';
import type { DeviceRequest } from '../../src/domain/deviceRequest';
import { simulatorTimings } from '../../src/embedded/simulatorTimings';
import type { ClusterSeed, PveTiming } from '../../src/simulators/pve';
import { startSimulatedWorld, type SimulatedWorld } from '../../src/simulators/world';
import { requireTemporalBinary } from '../../src/temporal/binaries';
import { registerSearchAttributes } from '../../src/temporal/searchAttributes';
import { searchAttributeDefinitions } from '../../src/contracts/searchAttributes';
import { closeActivityDeps, createActivityDeps, createWorker } from '../../src/worker';
import { startSshd, type RunningSshd } from './sshd';
import { quietLogger } from './quietLogger';
import { deviceRequest } from './requestDriver';

/**
 * What every workflow test file needs: Temporal's time-skipping test server, the workflow bundle built once, a
 * real OpenSSH sshd for snippets, and a fresh simulated world per test (so one test's faults and timings never
 * leak into another).
 */
export interface WorkflowHarness {
  env: TestWorkflowEnvironment;
  bundle: WorkflowBundle;
  sshd: RunningSshd;
  /** A new simulated Proxmox + NetBird, uploading snippets through the shared sshd. */
  world(timing?: Partial<PveTiming>, env?: Record<string, string>, adjustSeed?: (seed: ClusterSeed) => ClusterSeed | void): Promise<SimulatedWorld>;
  /**
   * A Temporal dev server in real time, started on first use: for tests about concurrency rather than time (the
   * time-skipping server's Java implementation is not safe under many parallel workflows: "Unbalanced lock and
   * unlock calls").
   */
  localEnv(): Promise<TestWorkflowEnvironment>;
  /** Runs `fn` while a worker with the real activities against `world` polls `taskQueue` (on `server`, default the time-skipping one). */
  withWorker<T>(world: SimulatedWorld, taskQueue: string, fn: () => Promise<T>, server?: TestWorkflowEnvironment): Promise<T>;
  /** A valid request whose period starts now on the server's clock. */
  request(serial: string, overrides?: Partial<DeviceRequest> & { periodDays?: number }, server?: TestWorkflowEnvironment): Promise<DeviceRequest>;
  stop(): Promise<void>;
}

export const DAY = 24 * 3600_000;

export async function startWorkflowHarness(): Promise<WorkflowHarness | { skipped: string }> {
  const started = await startSshd();
  if ('skipped' in started) return started;
  const sshd = started;
  const worlds: Array<{ world: SimulatedWorld; dir: string; env: Record<string, string> }> = [];
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: requireTemporalBinary('temporal-test-server') } },
  });
  await registerSearchAttributes(env.connection, 'default');
  const bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../../src/workflows'), logger: quietLogger });
  let local: Promise<TestWorkflowEnvironment> | undefined;

  return {
    env,
    bundle,
    sshd,
    async world(timing = {}, extraEnv = {}, adjustSeed = undefined) {
      const dir = mkdtempSync(join(tmpdir(), 'pveflow-world-'));
      const world = await startSimulatedWorld({
        dir,
        timing: { ...simulatorTimings.fast, ...timing },
        ...(adjustSeed ? { adjustSeed } : {}),
        externalSsh: { host: sshd.host, port: sshd.port, username: sshd.username, privateKey: sshd.privateKey, hostKeyFingerprint: sshd.hostKeyFingerprint, dir: sshd.dir },
      });
      worlds.push({ world, dir, env: extraEnv });
      return world;
    },
    localEnv() {
      local ??= TestWorkflowEnvironment.createLocal({
        server: { executable: { type: 'existing-path', path: requireTemporalBinary('temporal') }, searchAttributes: searchAttributeDefinitions },
      });
      return local;
    },
    async withWorker(world, taskQueue, fn, server = env) {
      const entry = worlds.find((w) => w.world === world);
      const extra = entry?.env ?? {};
      // The world's own key store: tests never leave credential keys in the project's .data.
      const keysDir = entry ? { CREDENTIAL_KEYS_DIR: join(entry.dir, 'credential-keys') } : {};
      const deps = createActivityDeps(loadConfig({ ...keysDir, ...world.env, ...extra, TEMPORAL_TASK_QUEUE: taskQueue }));
      const ownClient = deps.temporal.client;
      deps.temporal.client = server.client; // visibility of the test server, not a default address
      // Fast polls: the simulator's tasks finish in milliseconds.
      deps.settings.pollMinMs = 20;
      deps.settings.pollMaxMs = 200;
      const worker = await createWorker({ connection: server.nativeConnection, namespace: 'default', taskQueue, deps, workflowBundle: bundle });
      try {
        return await worker.runUntil(fn());
      } finally {
        deps.temporal.client = ownClient; // the test server's connection is the harness's to close
        await closeActivityDeps(deps);
      }
    },
    async request(serial, overrides = {}, server = env) {
      return deviceRequest(serial, overrides, await server.currentTimeMs());
    },
    async stop() {
      for (const w of worlds) {
        await w.world.stop();
        rmSync(w.dir, { recursive: true, force: true });
      }
      await env.teardown();
      if (local) await (await local).teardown();
      await sshd.stop();
    },
  };
}

/**
 * Starts the harness before the tests of the enclosing describe block and stops it after them. Tests use `harness.h`
 * and skip with `harness.skipped` when this machine cannot run it (sshd missing — never in CI, where that throws).
 */
export function useWorkflowHarness(): { readonly h: WorkflowHarness; readonly skipped: string | undefined } {
  let started: WorkflowHarness | undefined;
  let skipped: string | undefined;
  before(async () => {
    const s = await startWorkflowHarness();
    if ('skipped' in s) skipped = s.skipped;
    else started = s;
  });
  after(async () => {
    await started?.stop();
  });
  return {
    get h() {
      if (!started) throw new Error('the workflow harness is not running');
      return started;
    },
    get skipped() {
      return skipped;
    },
  };
}
