import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Connection } from '@temporalio/client';
import { loadConfig } from '../../src/config';
import { createTemporalClient, temporalAccessFrom } from '../../src/temporal/access';
import { simulatorTimings } from '../../src/embedded/simulatorTimings';
import type { NetbirdRateLimit } from '../../src/simulators/netbird/faults';
import { startSimulatedWorld, type SimulatedWorld } from '../../src/simulators/world';
import { cloneSlotsQuery } from '../../src/contracts/cloneSlotsMessages';
import { startChaosCluster, type ChaosCluster } from './chaosCluster';
import { chaosClient } from './chaosClient';
import { injectLockTimeouts, type LockTimeoutInjector } from './chaosFaults';
import { validRequestBody } from './requests';
import { waitFor } from './waitFor';
import { assertNothingLeft, assertOnePerRequest, worldBaseline } from './worldInvariants';
import { cloneSlotsWorkflowId } from '../../src/contracts/workflowIds';

export type Victim = 'worker' | 'api' | 'temporal';

export interface ChaosScenario {
  builds: number;
  /** What is SIGKILLed during the builds, in a random order at random moments. */
  kills: Victim[];
  /** Share of clones, configurations and starts that meet a lock timeout. */
  lockTimeoutShare?: number;
  netbirdRateLimit?: NetbirdRateLimit;
}

const ORG = 'Acme Corp';
/** The consultants on every request: each has a NetBird user in the simulated world. */
const CONSULTANTS = ['alice@consultancy.example'];
const TEMPLATE_VMID = 9000;
const active = new Set<string>(['Approved', 'Imaging', 'Provisioning', 'Configuring']);

/**
 * Builds long enough that a kill lands in the middle of them (clone, start and the guest agent take a noticeable
 * share of a second), short enough for CI.
 */
const timing = { ...simulatorTimings.fast, linkedCloneMs: 600, startMs: 300, agentStartMs: 800 };

/**
 * One chaos run: `builds` requests submitted and approved over HTTP while `kills` hit the processes; then every
 * request must be Fulfilled with exactly its VM and its NetBird objects and nothing else; then all are completed
 * and nothing of any request may be left. Returns a line for the test's diagnostics.
 */
export async function runChaosScenario(s: ChaosScenario): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'pveflow-chaos-'));
  let world: SimulatedWorld | undefined;
  let cluster: ChaosCluster | undefined;
  let injector: LockTimeoutInjector | undefined;
  try {
    world = await startSimulatedWorld({ dir: join(dir, 'sim'), timing });
    const w = world;
    cluster = await startChaosCluster({ dir, world, taskQueue: 'chaos' });
    const c = cluster;
    const client = chaosClient(cluster.apiUrl, cluster.operatorKey);
    const before = worldBaseline(w);
    if (s.netbirdRateLimit) w.netbird.faults.set({ rateLimit: s.netbirdRateLimit });
    if (s.lockTimeoutShare) injector = injectLockTimeouts(w, { share: s.lockTimeoutShare, builds: s.builds, templateVmid: TEMPLATE_VMID });

    const t0 = Date.now();
    const base = Date.now() + 30 * 24 * 3600_000;
    // The kills are timed from the moment the API first answers: before it, there is nothing in flight to hit.
    await waitFor('the API to answer', async () => ((await client.call('GET', '/healthz')).status === 200 ? true : undefined), 120_000, 250);
    // Where each kill landed, in the cluster's terms: shows that the kills hit builds in flight.
    const moments: string[] = [];
    const progress = () => {
      const vms = w.pve.dump().vms.filter((v) => !before.vms.has(v.vmid));
      return vms.length + vms.filter((v) => v.status === 'running').length + w.netbird.dump().peers.length;
    };
    const driver = killAtRandom(c, s.kills, s.builds, progress, (victim) => {
      const vms = w.pve.dump().vms.filter((v) => !before.vms.has(v.vmid));
      moments.push(`${victim}@${((Date.now() - t0) / 1000).toFixed(0)}s (${vms.length} VMs, ${vms.filter((v) => v.status === 'running').length} running)`);
    });
    const serials = await Promise.all(
      Array.from({ length: s.builds }, async (_, i) => {
        // Arrivals spread over the first kills (1 s per build), so that kills also meet submissions and approvals.
        await sleep(Math.random() * s.builds * 1_000);
        // A period end of its own: a second request made by a retry would show up as a duplicate in the list.
        const body = validRequestBody({
          name: 'chaos',
          client: ORG,
          consultants: CONSULTANTS,
          cores: 1,
          memory_mib: 1024,
          period: { start: new Date(Date.now() - 60_000).toISOString(), end: new Date(base + i * 60_000).toISOString() },
        });
        const serial = await client.submitOnce(body, `chaos-${t0}-${i}`);
        await client.actOnce(serial, 'approve', (status) => status !== 'Pending');
        return serial;
      }),
    );
    await driver;

    const records = await pollUntil(`all ${s.builds} requests to be Fulfilled`, s.builds * 60_000, async (seen) => {
      const all = await Promise.all(serials.map((serial) => client.record(serial)));
      seen(stuckSummary(all));
      // A build that failed stays Failed until someone acts: waiting longer would only hide it.
      const failed = all.filter((r) => !(active.has(r.status) || r.status === 'Fulfilled'));
      if (failed.length) throw new Error(`not fulfilled: ${failed.map((r) => `${r.serial} ${r.status}: ${r.build?.error ?? r.timeline?.at(-1)?.message ?? ''}`).join('; ')}`);
      return all.every((r) => r.status === 'Fulfilled') ? all : undefined;
    }).catch((err) => failWithLogs(c, err));
    const builtIn = (Date.now() - t0) / 1000;
    injector?.stop(); // the faults were for the builds; those already armed may still meet the cleanup

    // No request lost, none twice: the list holds exactly the submitted serials, one per period end.
    const listed = await client.listAll(ORG);
    assert.deepEqual(listed.map((i) => i.serial).sort(), [...serials].sort(), 'the API lists exactly the submitted requests');
    assert.equal(new Set(serials).size, s.builds, 'one serial per submission');

    // Every clone gave its slot back, whatever was killed while it held one.
    const connection = await Connection.connect({ address: cluster.temporalAddress });
    try {
      const access = temporalAccessFrom(loadConfig({ TEMPORAL_ADDRESS: cluster.temporalAddress, PVEFLOW_CODEC_KEYS: cluster.codecKeys }));
      const slots = await createTemporalClient(access, { connection }).workflow.getHandle(cloneSlotsWorkflowId('chaos')).query(cloneSlotsQuery);
      assert.deepEqual(slots, { held: [], waiting: [], reserved: [] }, 'no clone slot left held or asked for, no place left reserved');
    } finally {
      await connection.close();
    }

    // Exactly one VM and one set of NetBird objects per request, and nothing else.
    assertOnePerRequest(w, before, records, { name: 'chaos', consultants: CONSULTANTS });

    // Then all are completed, and nothing of any request is left.
    await Promise.all(serials.map((serial) => client.actOnce(serial, 'complete', (status) => status === 'Completing' || status === 'Completed')));
    const done = await pollUntil('all requests to be Completed', s.builds * 30_000, async (seen) => {
      const all = await Promise.all(serials.map((serial) => client.record(serial)));
      seen(stuckSummary(all));
      return all.every((r) => r.status === 'Completed') ? all : undefined;
    }).catch((err) => failWithLogs(c, err));
    assert.deepEqual(
      done.flatMap((r) => r.leftovers),
      [],
      'completion left nothing behind',
    );
    assertNothingLeft(w, before, serials, { name: 'chaos', consultants: CONSULTANTS });

    const starts = c.starts();
    const faults = injector ? `; lock timeouts injected ${JSON.stringify(injector.injected())}` : '';
    const nbRequests = Object.values(w.netbird.callCounts()).reduce((a, b) => a + b, 0);
    const limited = s.netbirdRateLimit ? `; NetBird limited to ${s.netbirdRateLimit.requestsPerSecond}/s (burst ${s.netbirdRateLimit.burst}), ${nbRequests} NetBird requests incl. refused` : '';
    return `${s.builds} builds; kills ${moments.join(', ')}; fulfilled after ${builtIn.toFixed(0)} s, total ${((Date.now() - t0) / 1000).toFixed(0)} s; process starts ${JSON.stringify(starts)}; client calls without answer or 5xx ${client.failures()}${faults}${limited}`;
  } finally {
    injector?.stop();
    await cluster?.stop();
    await world?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Like waitFor, but an error thrown by `probe` ends the wait: it reports a final state, not a passing outage. What
 * the probe last `seen` goes into the timeout's message: where the stragglers were stuck.
 */
async function pollUntil<T>(what: string, timeoutMs: number, probe: (seen: (state: string) => void) => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const value = await probe((state) => (last = state));
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}; last seen: ${last}`);
    await sleep(3_000);
  }
}

/** Requests per status, and for the unfinished ones the build stage and its last log line. */
function stuckSummary(records: any[]): string {
  const byStatus = new Map<string, number>();
  for (const r of records) byStatus.set(r.status, (byStatus.get(r.status) ?? 0) + 1);
  const open = records.filter((r) => r.status !== 'Fulfilled' && r.status !== 'Completed').slice(0, 5);
  const detail = open.map((r) => `${r.serial} ${r.status}/${r.build?.stage ?? '-'}: ${r.build?.log?.at(-1)?.message ?? ''}`);
  return `${JSON.stringify(Object.fromEntries(byStatus))}${detail.length ? `; e.g. ${detail.join('; ')}` : ''}`;
}

async function failWithLogs(c: ChaosCluster, err: unknown): Promise<never> {
  throw new Error(`${(err as Error).message}\n${c.logTails()}`);
}

/**
 * Each kill at a random moment after the builds have made progress since the previous one (a new VM, a start, a
 * peer): a worker killed again before its replacement has picked up any work tests nothing. The random pause
 * (1–5 s per 10 builds) grows with the run, so that the kills spread over its builds.
 */
async function killAtRandom(c: ChaosCluster, kills: Victim[], builds: number, progress: () => number, onKill: (victim: Victim) => void): Promise<void> {
  const order = [...kills].sort(() => Math.random() - 0.5);
  const scale = Math.max(1, builds / 10);
  let seen = progress();
  for (const victim of order) {
    // Once every build has its VM running and its peer there is no progress left to wait for.
    const waitUntil = Date.now() + 15_000 * scale;
    while (progress() <= seen && progress() < 3 * builds && Date.now() < waitUntil) await sleep(250);
    await sleep((1_000 + Math.random() * 4_000) * scale);
    seen = progress();
    onKill(victim);
    if (victim === 'worker') await c.killWorker();
    else if (victim === 'api') await c.killApi();
    else await c.killTemporal();
  }
}
