import { Runtime } from '@temporalio/worker';

/**
 * The Temporal SDK's own worker metrics (task slots, poll latencies, sticky cache, workflow completions) come from
 * the Core runtime's Prometheus exporter. `Runtime.install` works once per process and only before the first
 * connection, so it is opt-in (`TEMPORAL_SDK_METRICS_ADDRESS`) and never done by tests that share a process.
 * Returns what the worker's `/metrics` appends: the exporter's text, fetched with a short timeout.
 */
export function installSdkMetrics(bindAddress: string): () => Promise<string> {
  Runtime.install({ telemetryOptions: { metrics: { prometheus: { bindAddress } } } });
  const url = `http://${bindAddress}/metrics`;
  return async () => {
    const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    if (!res.ok) throw new Error(`the SDK's metrics exporter answered ${res.status}`);
    return res.text();
  };
}
