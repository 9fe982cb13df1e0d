import { setTimeout as sleep } from 'node:timers/promises';
import { simulatorTimings } from '../src/embedded/simulatorTimings';
import { defaultClusterSeed, realisticTiming, type PveTiming } from '../src/simulators/pve';
import { buildNowBody, countWorkflows, machineLine, percentile, pool, startBenchStack, waitForCount, type BenchStack } from './embeddedBench';

/**
 * Orchestration overhead under load: N builds (BENCH_BUILDS, default 100) approved at once against the simulated
 * cluster with realistic task durations (SIM_TIMING=realistic: clone, configuration, start, guest agent, DHCP), then
 * wall time (first approval → last build closed) ÷ the floor those durations and the concurrency limits allow.
 *
 * The floor: clones of one storage wait for each other twice over. pveflow runs at most PVE_CLONE_LIMIT_PER_STORAGE
 * clones per storage (cluster-wide for a shared one) and PVE_CLONE_LIMIT_PER_NODE per node; and inside Proxmox
 * every new volume takes the storage's lock for `storageAllocMs`. So the last clone cannot end before
 *   max(N × allocations-per-clone × storageAllocMs + linkedCloneMs,  ⌈N / slots⌉ × (allocations × storageAllocMs + linkedCloneMs))
 * and its build then still needs configMs + startMs + agentStartMs + ipv4AfterAgentMs. Everything else (placement,
 * the snippet upload, NetBird, Temporal itself) is pveflow's overhead, which the target allows to be 20 % of it.
 * Run: `npm run bench:overhead` (BENCH_BUILDS=20 for a quick look; the floor changes with N).
 */
const N = Number(process.env.BENCH_BUILDS ?? 100);
const API_CONCURRENCY = 20;

async function main(): Promise<void> {
  const figures: string[] = [];
  const b = await startBenchStack('realistic');
  try {
    const floor = floorOf(
      N,
      { ...realisticTiming, ...simulatorTimings.realistic },
      {
        perNode: b.stack.config.PVE_CLONE_LIMIT_PER_NODE,
        perStorage: b.stack.config.PVE_CLONE_LIMIT_PER_STORAGE,
        templateVmid: b.stack.config.PVE_TEMPLATE_VMID,
        world: b.stack.world!,
      },
    );

    // On a loaded box the API's Temporal deadline can pass: a submission is retried under its Idempotency-Key, an
    // approval until the request has left Pending. Neither is part of the measured builds.
    const serials = await pool(
      Array.from({ length: N }, (_, i) => i),
      API_CONCURRENCY,
      async (i) => {
        const body = buildNowBody(i);
        const answer = await retrying(`submission ${i}`, () => call(b, 'POST', '/api/device_requests', body, { 'idempotency-key': `overhead-${process.pid}-${i}` }));
        return answer.body.serial as string;
      },
    );
    const t0 = Date.now();
    await pool(serials, API_CONCURRENCY, (serial) =>
      retrying(`approval of ${serial}`, async () => {
        const a = await call(b, 'POST', `/api/device_requests/${serial}/approve`, {});
        if (a.status !== 409) return a;
        const r = await call(b, 'GET', `/api/device_requests/${serial}`);
        return r.status === 200 && r.body.status !== 'Pending' ? { status: 200, body: r.body } : r;
      }),
    );
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
      1_000,
    );

    let lastClose = 0;
    let lastSerial = serials[0]!;
    const durations: number[] = [];
    await pool(serials, API_CONCURRENCY, async (serial) => {
      const d = await b.stack.client.workflow.getHandle(`vm-build-${serial}-1`).describe();
      if (d.closeTime!.getTime() > lastClose) [lastClose, lastSerial] = [d.closeTime!.getTime(), serial];
      durations.push(d.closeTime!.getTime() - d.startTime.getTime());
    });
    // Where the last build's time went, stage by stage: the part of the wall time the floor does not explain.
    const last = await b.api('GET', `/api/device_requests/${lastSerial}`, undefined, 200);
    const log = (last.build?.log ?? []) as Array<{ at: string; stage: string; message: string }>;
    const logStart = log.length ? Date.parse(log[0]!.at) : 0;
    durations.sort((x, y) => x - y);
    const wall = (lastClose - t0) / 1000;
    figures.push(machineLine());
    figures.push(`overhead: ${N} parallel builds, SIM_TIMING=realistic, embedded default (dev server on SQLite, one worker, API in-process)`);
    figures.push(`floor: ${floor.explain}`);
    figures.push(
      `approvals sent in ${approveSecs.toFixed(1)} s (${API_CONCURRENCY} at a time); build workflow duration p50 ${(percentile(durations, 50) / 1000).toFixed(1)} s, p95 ${(percentile(durations, 95) / 1000).toFixed(1)} s (one build alone: ≥ ${(floor.oneBuildMs / 1000).toFixed(1)} s)`,
    );
    figures.push(`the last build (${lastSerial}), from its first log line:`);
    for (const l of log) figures.push(`  +${((Date.parse(l.at) - logStart) / 1000).toFixed(1).padStart(5)} s  ${l.stage}: ${l.message.slice(0, 110)}`);
    figures.push(`wall time (first approval → last build closed) ${wall.toFixed(1)} s; floor ${(floor.ms / 1000).toFixed(1)} s; ratio ${(wall / (floor.ms / 1000)).toFixed(2)}  (target ≤ 1.2)`);
  } catch (err) {
    // Printed before the stop: calls still in flight fail once the stack is down and would bury it.
    console.error(err);
    process.exitCode = 1;
  } finally {
    await b.stop();
  }
  console.log(figures.join('\n'));
}

/** One API call as the operator; status 0 when no answer came. */
async function call(b: BenchStack, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  try {
    const res = await fetch(`${b.stack.apiUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${b.operatorKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(60_000),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  } catch (err) {
    return { status: 0, body: String(err) };
  }
}

async function retrying(what: string, attempt: () => Promise<{ status: number; body: any }>): Promise<{ status: number; body: any }> {
  for (let i = 0; ; i++) {
    const a = await attempt();
    if (a.status >= 200 && a.status < 300) return a;
    if ((a.status !== 0 && a.status < 500) || i >= 10) throw new Error(`${what}: ${a.status} ${JSON.stringify(a.body).slice(0, 300)}`);
    await sleep(1_000);
  }
}

interface Limits {
  perNode: number;
  perStorage: number;
  templateVmid: number;
  world: NonNullable<BenchStack['stack']['world']>;
}

/** The floor described above, from the simulated template's volumes and the configured limits (0: unlimited). */
function floorOf(n: number, t: PveTiming, limits: Limits): { ms: number; oneBuildMs: number; explain: string } {
  const template = limits.world.pve.dump().vms.find((v) => v.vmid === limits.templateVmid);
  if (!template) throw new Error(`template ${limits.templateVmid} not in the simulated cluster`);
  // The volumes a linked clone allocates: every disk, and the cloud-init drive (a CD-ROM, but a volume of its own).
  const volumes = Object.entries(template.config)
    .filter(([key, value]) => /^(scsi|virtio|sata|ide|efidisk|tpmstate)\d+$/.test(key) && (!/media=cdrom/.test(value) || /cloudinit/.test(value)))
    .map(([, value]) => value.split(':')[0]!);
  const storages = [...new Set(volumes)];
  const seed = defaultClusterSeed({ tokenSecret: 'x', rootTokenSecret: 'y' });
  const nodes = limits.world.pve.dump().nodes.length;
  const shared = storages.every((id) => seed.storages.find((s) => s.id === id)?.shared);
  if (!shared) throw new Error(`the floor assumes the template's storages (${storages.join(', ')}) are shared, as the default seed's ceph is`);
  // Clones running at once, cluster-wide: a shared storage's limit holds for all nodes together.
  const slots = Math.min(limits.perStorage > 0 ? limits.perStorage : Infinity, limits.perNode > 0 ? limits.perNode * nodes : Infinity, n);
  const allocMs = volumes.length * t.storageAllocMs;
  const cloneMs = allocMs + t.linkedCloneMs;
  const lastCloneEnds = Math.max(n * allocMs + t.linkedCloneMs, Math.ceil(n / slots) * cloneMs);
  const tailMs = t.configMs + t.startMs + t.agentStartMs + t.ipv4AfterAgentMs;
  return {
    ms: lastCloneEnds + tailMs,
    oneBuildMs: cloneMs + tailMs,
    explain:
      `${slots} clone slots (per storage ${limits.perStorage}, per node ${limits.perNode} × ${nodes} nodes), ${volumes.length} volumes per clone on ${storages.join(', ')} × ${t.storageAllocMs} ms storage lock + ${t.linkedCloneMs} ms clone → last clone ends ≥ ${(lastCloneEnds / 1000).toFixed(1)} s; ` +
      `then config ${t.configMs} + start ${t.startMs} + agent ${t.agentStartMs} + IPv4 ${t.ipv4AfterAgentMs} ms`,
  };
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
