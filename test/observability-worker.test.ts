import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Client } from '@temporalio/client';
import { bundleWorkflowCode, type WorkflowBundle } from '@temporalio/worker';
import { loadConfig } from '../src/config';
import { createMetricsRegistry, createPveflowMetrics, upstreamCallRecorder, type PveflowMetrics } from '../src/observability';
import { createTracing, tracingSettingsFrom, type Tracing } from '../src/observability/tracing';
import { BUILD_OUTCOMES_MODULE } from '../src/observability/workerObservability';
import type { SimulatedWorld } from '../src/simulators/world';
import { clusterSync, vmBuild } from '../src/workflows';
import { closeActivityDeps, createActivityDeps, createWorker } from '../src/worker';
import { activityBuildStages, createActivities } from '../src/activities';
import { quietLogger } from './support/quietLogger';
import { useWorkflowHarness } from './support/workflowHarness';

/**
 * The worker's metrics and tracing around real builds (time-skipping server, simulators, real sshd): upstream calls
 * by operation template, stage durations, build outcomes, sync orphans, and spans exported over OTLP/HTTP to a
 * collector that only records what it is sent.
 */

describe('worker observability', () => {
  const harness = useWorkflowHarness();
  let collector: Server;
  let collectorUrl: string;
  const exported: Array<{ path: string; body: string }> = [];
  let bundle: WorkflowBundle;
  let tracing: Tracing;

  before(async () => {
    collector = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.method === 'POST') exported.push({ path: req.url ?? '', body: Buffer.concat(chunks).toString('utf8') });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((ok) => collector.listen(0, '127.0.0.1', () => ok()));
    collectorUrl = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
    const settings = tracingSettingsFrom({ OTEL_EXPORTER_OTLP_ENDPOINT: collectorUrl, OTEL_SERVICE_NAME: 'pveflow-test' });
    assert.ok(settings, 'an OTLP endpoint turns tracing on');
    tracing = createTracing(settings);
    bundle = await bundleWorkflowCode({
      workflowsPath: require.resolve('../src/workflows'),
      workflowInterceptorModules: [BUILD_OUTCOMES_MODULE, ...tracing.workflowModules],
      logger: quietLogger,
    });
  });
  after(async () => {
    await tracing?.shutdown();
    await new Promise<void>((ok) => (collector ? collector.close(() => ok()) : ok()));
  });

  async function withObservedWorker<T>(world: SimulatedWorld, taskQueue: string, metrics: PveflowMetrics, fn: (client: Client) => Promise<T>, env = harness.h.env): Promise<T> {
    const deps = createActivityDeps(loadConfig(world.env), { onUpstreamCall: upstreamCallRecorder(metrics) });
    const ownClient = deps.temporal.client;
    deps.temporal.client = env.client;
    deps.settings.pollMinMs = 20;
    deps.settings.pollMaxMs = 200;
    const worker = await createWorker({ connection: env.nativeConnection, namespace: 'default', taskQueue, deps, workflowBundle: bundle, metrics, tracing });
    const client = new Client({ connection: env.connection, namespace: 'default', interceptors: { workflow: tracing.clientInterceptors } });
    try {
      return await worker.runUntil(fn(client));
    } finally {
      deps.temporal.client = ownClient;
      await closeActivityDeps(deps);
    }
  }

  test('a completed build counts its outcome, times its stages, counts calls by template and exports its spans', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const world = await harness.h.world();
    const registry = createMetricsRegistry({ defaultMetrics: false });
    const metrics = createPveflowMetrics(registry);
    const serial = 'VM-OBS01';
    const taskQueue = `obs-${process.pid}-ok`;
    // The dev server: cluster sync reads visibility, which the time-skipping server does not serve.
    const local = await harness.h.localEnv();
    const result = await withObservedWorker(
      world,
      taskQueue,
      metrics,
      async (client) => {
        const built = await client.workflow.execute(vmBuild, { workflowId: `vm-build-${serial}-1`, taskQueue, args: [{ request: await harness.h.request(serial, {}, local), attempt: 1 }] });
        // The build's VM belongs to no request: the next sync run calls it an orphan.
        await client.workflow.execute(clusterSync, { workflowId: `sync-${serial}`, taskQueue });
        return built;
      },
      local,
    );
    const text = await registry.metrics();

    assert.match(text, /^pveflow_builds_total\{outcome="completed"\} 1$/m);
    for (const stage of ['choosing-node', 'reserving-vmid', 'cloning', 'uploading-snippet', 'configuring', 'starting', 'waiting-for-ip', 'vpn-peer', 'vpn-access']) {
      assert.match(text, new RegExp(`^pveflow_build_stage_duration_seconds_count\\{stage="${stage}",outcome="ok"\\} [1-9]`, 'm'), stage);
    }
    assert.match(text, /^pveflow_upstream_calls_total\{system="proxmox",operation="POST \/nodes\/\{node\}\/qemu\/\{vmid\}\/clone",outcome="ok"\} 1$/m);
    assert.match(text, /^pveflow_upstream_calls_total\{system="netbird",operation="POST \/api\/policies",outcome="ok"\} 1$/m);
    assert.match(text, /^pveflow_upstream_call_duration_seconds_count\{system="proxmox",operation="GET \/nodes\/\{node\}\/tasks\/\{upid\}\/status"\} [1-9]/m);
    // Labels are templates: no VMID, node, UPID or serial ever becomes a series of its own.
    const operations = [...text.matchAll(/operation="([^"]*)"/g)].map((m) => m[1]!);
    assert.ok(operations.length > 0);
    for (const op of operations) {
      assert.ok(!op.includes(String(result.vmid)) && !op.includes(result.node) && !op.includes(serial) && !/UPID/.test(op), op);
    }
    assert.match(text, /^pveflow_sync_orphan_vms [1-9]/m);
    assert.match(text, /^pveflow_sync_drift_total\{kind="orphan"\} [1-9]/m);

    await tracing.flush();
    const traces = exported.filter((e) => e.path === '/v1/traces');
    assert.ok(traces.length > 0, `the collector received no POST /v1/traces (got ${exported.map((e) => e.path).join(', ') || 'nothing'})`);
    const spans = traces.map((e) => e.body).join('\n');
    for (const name of ['StartWorkflow:vmBuild', 'RunWorkflow:vmBuild', 'RunActivity:cloneTemplate', 'RunActivity:joinVpn']) {
      assert.ok(spans.includes(name), `span ${name} exported`);
    }
    assert.ok(spans.includes('pveflow-test'), 'spans carry the service name');
  });

  test('a failed build counts as failed, and the failing stage and the undos are timed with their outcome', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const world = await harness.h.world();
    const registry = createMetricsRegistry({ defaultMetrics: false });
    const metrics = createPveflowMetrics(registry);
    const serial = 'VM-OBS02';
    const taskQueue = `obs-${process.pid}-fail`;
    await withObservedWorker(world, taskQueue, metrics, async (client) => {
      const request = await harness.h.request(serial, { templateVmid: 9999 });
      await assert.rejects(client.workflow.execute(vmBuild, { workflowId: `vm-build-${serial}-1`, taskQueue, args: [{ request, attempt: 1 }] }));
    });
    const text = await registry.metrics();
    assert.match(text, /^pveflow_builds_total\{outcome="failed"\} 1$/m);
    assert.doesNotMatch(text, /pveflow_builds_total\{outcome="completed"\}/);
    assert.match(text, /^pveflow_build_stage_duration_seconds_count\{stage="cloning",outcome="failed"\} [1-9]/m);
    assert.match(text, /^pveflow_build_stage_duration_seconds_count\{stage="undo",outcome="ok"\} [1-9]/m);
  });

  test('every activity the worker registers has its build stage; every one a build calls is timed under a stage it reports', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const world = await harness.h.world();
    const deps = createActivityDeps(loadConfig(world.env));
    let registered: string[];
    try {
      registered = Object.keys(createActivities(deps)).sort();
    } finally {
      await closeActivityDeps(deps);
    }
    assert.ok(registered.includes('startVmUnderHa') && registered.length > 30, registered.join(' '));
    assert.deepEqual(Object.keys(activityBuildStages).sort(), registered, 'the stage table names exactly the activities createActivities registers');

    // The build as written: the stages it reports, and the activities it calls through its proxies.
    const source = readFileSync(require.resolve('../src/workflows/vmBuild'), 'utf8');
    const reported = new Set([...source.matchAll(/\bstage\('([a-z-]+)'/g)].map((m) => m[1]!));
    const called = new Set([...source.matchAll(/\b(?:api|remoteApi|task|wait|undo)\.([A-Za-z]+)\(/g)].map((m) => m[1]!));
    assert.ok(called.has('cloneTemplate') && called.has('startVmUnderHa') && called.has('destroyVm'), [...called].join(' '));
    const stages = activityBuildStages as Readonly<Record<string, string | null>>;
    for (const activity of called) {
      const stage = stages[activity];
      assert.ok(stage, `vmBuild calls ${activity}, which has no build stage`);
      assert.ok(stage === 'undo' || reported.has(stage), `${activity}'s stage ${stage} is not one vmBuild reports`);
    }
  });
});
