import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { requireTemporalBinary } from '../src/temporal/binaries';
import { freePort } from './support/ports';

/**
 * The Temporal SDK's worker metrics, appended to the worker's own /metrics. `Runtime.install` works once per
 * process and before any connection, so this runs in a child process of its own: install the exporter, start a
 * worker against the time-skipping server, scrape the worker's /metrics once.
 */
test('one scrape of the worker’s /metrics has pveflow’s metrics and the SDK’s', { timeout: 120_000 }, async () => {
  const server = requireTemporalBinary('temporal-test-server');
  const dir = mkdtempSync(join(tmpdir(), 'pveflow-sdk-metrics-'));
  const src = resolve(__dirname, '..', 'src');
  // Outside the repository, so every import is by absolute path.
  const script = join(dir, 'child.ts');
  writeFileSync(
    script,
    `
    import { TestWorkflowEnvironment } from ${JSON.stringify(require.resolve('@temporalio/testing'))};
    import { Worker } from ${JSON.stringify(require.resolve('@temporalio/worker'))};
    import { createMetricsRegistry, createPveflowMetrics } from ${JSON.stringify(join(src, 'observability'))};
    import { startMetricsServer } from ${JSON.stringify(join(src, 'observability', 'metricsServer'))};
    import { installSdkMetrics } from ${JSON.stringify(join(src, 'observability', 'sdkMetrics'))};

    async function main() {
      const sdk = installSdkMetrics('127.0.0.1:${await freePort()}');
      const env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: ${JSON.stringify(server)} } } });
      const registry = createMetricsRegistry();
      createPveflowMetrics(registry).builds.inc({ outcome: 'completed' });
      const metrics = await startMetricsServer({ host: '127.0.0.1', port: 0, registry, append: sdk });
      const worker = await Worker.create({ connection: env.nativeConnection, taskQueue: 'sdk-metrics', activities: { noop: async () => undefined } });
      const text = await worker.runUntil(async () => {
        await new Promise((r) => setTimeout(r, 1500)); // the pollers start, and the exporter has something to say
        return (await fetch(metrics.url)).text();
      });
      process.stdout.write(JSON.stringify({ text }));
      await metrics.close();
      await env.teardown();
    }
    main().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });
  `,
  );
  try {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', script], {
      cwd: resolve(__dirname, '..'),
      timeout: 100_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    const { text } = JSON.parse(stdout.slice(stdout.lastIndexOf('{"text"'))) as { text: string };
    assert.match(text, /^pveflow_builds_total\{outcome="completed"\} 1$/m);
    assert.match(text, /^temporal_\w+/m, 'the SDK’s own metrics are appended');
    assert.match(text, /^process_resident_memory_bytes \d+$/m, 'and the worker process’s own (prom-client’s default metrics)');
    assert.match(text, /^nodejs_eventloop_lag_seconds [0-9.e+-]+$/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
