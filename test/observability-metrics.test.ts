import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import express from 'express';
import { PveApiError } from '../src/clients/pve';
import { SftpError } from '../src/clients/sftp';
import { NetbirdApiError } from '../src/clients/netbird/NetbirdApiError';
import { createPveflowMetrics, measureUpstreamCall, metricsEndpoint, pveOperation, createMetricsRegistry, upstreamErrorClass } from '../src/observability';

/** The metric catalogue rendered in Prometheus' text format, as a scraper reads it. */
function lines(text: string, name: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(name));
}

describe('metrics', () => {
  test('counters, gauges and histograms render in the text exposition format', async () => {
    const registry = createMetricsRegistry({ defaultMetrics: false });
    const m = createPveflowMetrics(registry);
    m.builds.inc({ outcome: 'completed' });
    m.builds.inc({ outcome: 'completed' }, 2);
    m.syncOrphans.set({}, 4);
    m.buildStageDuration.observe({ stage: 'cloning', outcome: 'ok' }, 3);
    m.buildStageDuration.observe({ stage: 'cloning', outcome: 'ok' }, 0.2);
    const text = await registry.metrics();

    assert.match(text, /^# HELP pveflow_builds_total Finished build attempts by outcome\.$/m);
    assert.match(text, /^# TYPE pveflow_builds_total counter$/m);
    assert.deepEqual(lines(text, 'pveflow_builds_total{'), ['pveflow_builds_total{outcome="completed"} 3']);
    assert.deepEqual(lines(text, 'pveflow_sync_orphan_vms '), ['pveflow_sync_orphan_vms 4']);
    assert.match(text, /^# TYPE pveflow_build_stage_duration_seconds histogram$/m);
    const h = lines(text, 'pveflow_build_stage_duration_seconds_');
    // prom-client writes `le` first; the order of labels carries no meaning in the exposition format.
    assert.ok(h.includes('pveflow_build_stage_duration_seconds_bucket{le="0.05",stage="cloning",outcome="ok"} 0'));
    assert.ok(h.includes('pveflow_build_stage_duration_seconds_bucket{le="0.25",stage="cloning",outcome="ok"} 1'));
    assert.ok(h.includes('pveflow_build_stage_duration_seconds_bucket{le="2.5",stage="cloning",outcome="ok"} 1'));
    assert.ok(h.includes('pveflow_build_stage_duration_seconds_bucket{le="5",stage="cloning",outcome="ok"} 2'));
    assert.ok(h.includes('pveflow_build_stage_duration_seconds_bucket{le="+Inf",stage="cloning",outcome="ok"} 2'));
    assert.ok(h.includes('pveflow_build_stage_duration_seconds_sum{stage="cloning",outcome="ok"} 3.2'));
    assert.ok(h.includes('pveflow_build_stage_duration_seconds_count{stage="cloning",outcome="ok"} 2'));
  });

  test('label values are escaped; wrong label sets and falling counters are programming errors', async () => {
    const registry = createMetricsRegistry({ defaultMetrics: false });
    const m = createPveflowMetrics(registry);
    m.httpRequests.inc({ method: 'GET', route: 'a"b\\c\nd', status: '200' });
    assert.match(await registry.metrics(), /route="a\\"b\\\\c\\nd"/);
    assert.throws(() => m.builds.inc({ outcome: 'x', extra: 'y' } as never), /label "extra" is not included in initial labelset: \[ 'outcome' \]/);
    assert.throws(() => m.builds.inc({ outcome: 'x' }, -1), /not possible to decrease a counter/);
    assert.throws(() => createPveflowMetrics(registry), /pveflow_requests has already been registered/);
  });

  test('pveflow_requests is refreshed from the counter at each scrape; states that emptied disappear', async () => {
    const registry = createMetricsRegistry({ defaultMetrics: false });
    let counts: Record<string, number> = { Pending: 2, Fulfilled: 5 };
    createPveflowMetrics(registry, { countRequests: async () => counts });
    assert.deepEqual(lines(await registry.metrics(), 'pveflow_requests{'), ['pveflow_requests{status="Pending"} 2', 'pveflow_requests{status="Fulfilled"} 5']);
    counts = { Fulfilled: 6 };
    assert.deepEqual(lines(await registry.metrics(), 'pveflow_requests{'), ['pveflow_requests{status="Fulfilled"} 6']);
  });

  test('a failing collector keeps the last values and is reported, the scrape still succeeds', async () => {
    const failures: string[] = [];
    const registry = createMetricsRegistry({ defaultMetrics: false });
    let fail = false;
    createPveflowMetrics(registry, {
      onCollectError: (name) => failures.push(name),
      countRequests: async () => {
        if (fail) throw new Error('Temporal unreachable');
        return { Pending: 1 };
      },
    });
    await registry.metrics();
    fail = true;
    assert.deepEqual(lines(await registry.metrics(), 'pveflow_requests{'), ['pveflow_requests{status="Pending"} 1']);
    assert.deepEqual(failures, ['pveflow_requests']);
  });

  test('upstream calls are timed and counted with their outcome, errors rethrown untouched', async () => {
    const registry = createMetricsRegistry({ defaultMetrics: false });
    const m = createPveflowMetrics(registry);
    let t = 0;
    const clock = () => t;
    const op = { system: 'proxmox' as const, operation: pveOperation('POST', '/nodes/pve1/qemu/9000/clone') };
    await measureUpstreamCall(m, op, async () => void (t += 120), clock);
    const refused = new PveApiError({ method: 'POST', path: '/nodes/pve1/qemu/9000/clone', status: 403, reason: 'Permission check failed' });
    await assert.rejects(
      measureUpstreamCall(
        m,
        op,
        async () => {
          t += 5;
          throw refused;
        },
        clock,
      ),
      (err) => err === refused,
    );
    const text = await registry.metrics();
    assert.deepEqual(lines(text, 'pveflow_upstream_calls_total{'), [
      'pveflow_upstream_calls_total{system="proxmox",operation="POST /nodes/{node}/qemu/{vmid}/clone",outcome="ok"} 1',
      'pveflow_upstream_calls_total{system="proxmox",operation="POST /nodes/{node}/qemu/{vmid}/clone",outcome="permission"} 1',
    ]);
    assert.ok(text.includes('pveflow_upstream_call_duration_seconds_sum{system="proxmox",operation="POST /nodes/{node}/qemu/{vmid}/clone"} 0.125'));
  });

  test('error classes come from what the clients already know, and stay a bounded set', () => {
    assert.equal(upstreamErrorClass(new PveApiError({ method: 'GET', path: '/x', status: 500, reason: 'VM is locked (clone)' })), 'locked');
    assert.equal(upstreamErrorClass(new SftpError('x', { kind: 'host-key-mismatch', retryable: false, host: 'h', port: 22 })), 'host-key-mismatch');
    const nb = (status?: number) => new NetbirdApiError({ operation: 'GET /api/users', path: '/api/users', status, netbirdMessage: 'x', attempts: 1 });
    assert.deepEqual([nb(401), nb(403), nb(404), nb(429), nb(502), nb(400), nb()].map(upstreamErrorClass), ['auth', 'permission', 'notFound', 'rateLimited', 'server', 'param', 'transport']);
    assert.equal(upstreamErrorClass(new Error('boom')), 'other');
    assert.equal(pveOperation('GET', '/nodes/pve3/tasks/UPID:pve3:0001:0002:0003:qmclone:9000:x@pve!y:/status'), 'GET /nodes/{node}/tasks/{upid}/status');
    assert.equal(pveOperation('GET', '/cluster/resources'), 'GET /cluster/resources');
    assert.equal(pveOperation('DELETE', '/cluster/ha/resources/vm%3A10042'), 'DELETE /cluster/ha/resources/{sid}');
  });

  test('GET /metrics with a token refuses scrapers without it, and appends the SDK’s text when it can', async () => {
    const registry = createMetricsRegistry({ defaultMetrics: false });
    createPveflowMetrics(registry).builds.inc({ outcome: 'completed' });
    let sdkUp = true;
    const app = express();
    app.get(
      '/metrics',
      metricsEndpoint(registry, {
        token: 'a-metrics-token-of-some-length',
        append: async () => {
          if (!sdkUp) throw new Error('exporter down');
          return 'temporal_workflow_completed{namespace="default"} 3';
        },
      }),
    );
    const server = await new Promise<Server>((ok) => {
      const s = app.listen(0, '127.0.0.1', () => ok(s));
    });
    const scrape = (authorization?: string) => fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`, { headers: authorization ? { authorization } : {}, signal: AbortSignal.timeout(5_000) });
    try {
      assert.equal((await scrape()).status, 401);
      assert.equal((await scrape('Bearer a-metrics-token-of-some-lengtX')).status, 401);
      const ok = await scrape('Bearer a-metrics-token-of-some-length');
      assert.equal(ok.status, 200);
      const text = await ok.text();
      assert.match(text, /^pveflow_builds_total\{outcome="completed"\} 1$/m);
      assert.match(text, /^temporal_workflow_completed\{namespace="default"\} 3\n$/m);
      sdkUp = false;
      const without = await scrape('Bearer a-metrics-token-of-some-length');
      assert.equal(without.status, 200, 'an unreachable SDK exporter does not fail our scrape');
      assert.doesNotMatch(await without.text(), /temporal_workflow_completed/);
    } finally {
      await new Promise<void>((ok) => server.close(() => ok()));
    }
  });

  test("GET /metrics serves the text format to a scraper, with the process metrics beside pveflow's", async () => {
    const registry = createMetricsRegistry();
    createPveflowMetrics(registry).builds.inc({ outcome: 'failed' });
    const app = express();
    app.get('/metrics', metricsEndpoint(registry));
    const server = await new Promise<Server>((ok) => {
      const s = app.listen(0, '127.0.0.1', () => ok(s));
    });
    try {
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`, { signal: AbortSignal.timeout(5_000) });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      const text = await res.text();
      assert.match(text, /pveflow_builds_total\{outcome="failed"\} 1/);
      for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds']) {
        assert.match(text, new RegExp(`^# TYPE ${name} \\w+\n(?:${name} [0-9.e+-]+\n)`, 'm'), name);
      }
      assert.match(text, /^# TYPE nodejs_gc_duration_seconds histogram$/m);
    } finally {
      await new Promise<void>((ok) => server.close(() => ok()));
    }
  });
});
