import { Runtime, type RuntimeOptions } from '@temporalio/worker';
import type { Logger } from './log';
import { sdkLoggerFrom } from './sdkLogger';

export interface SdkRuntimeOptions {
  /** Where the SDK's own log lines go (pveflow's JSON logger); unset: the SDK's default logger. */
  logger?: Logger;
  /** `host:port` for the Core runtime's Prometheus exporter (TEMPORAL_SDK_METRICS_ADDRESS); unset: no SDK metrics. */
  metricsAddress?: string;
  /**
   * Signals on which the SDK shuts its workers down by itself (its default: SIGINT, SIGTERM, SIGQUIT, SIGUSR2).
   * `[]` for a process that stops its parts in its own order (`npm start`).
   */
  shutdownSignals?: NodeJS.Signals[];
}

/**
 * Installs the Temporal SDK's runtime for a process that runs a worker: its log lines through pveflow's logger, and
 * its worker metrics (task slots, poll latencies, sticky cache, workflow completions) from the Core runtime's
 * Prometheus exporter. `Runtime.install` works once per process and only before the first connection, so only the
 * processes' entry points call it, never tests that share a process.
 * Returns what the worker's `/metrics` appends, when the exporter is on: its text, fetched with a short timeout.
 */
export function installSdkRuntime(opts: SdkRuntimeOptions): (() => Promise<string>) | undefined {
  const options: RuntimeOptions = {
    ...(opts.logger ? { logger: sdkLoggerFrom(opts.logger) } : {}),
    ...(opts.shutdownSignals ? { shutdownSignals: opts.shutdownSignals } : {}),
    telemetryOptions: {
      // Core's own lines (polling, task errors) forwarded too, else they go to stderr in their own format.
      ...(opts.logger ? { logging: { filter: { core: 'WARN', other: 'ERROR' }, forward: {} } } : {}),
      ...(opts.metricsAddress ? { metrics: { prometheus: { bindAddress: opts.metricsAddress } } } : {}),
    },
  };
  if (!opts.logger && !opts.metricsAddress) return undefined;
  Runtime.install(options);
  if (!opts.metricsAddress) return undefined;
  const url = `http://${opts.metricsAddress}/metrics`;
  return async () => {
    const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    if (!res.ok) throw new Error(`the SDK's metrics exporter answered ${res.status}`);
    return res.text();
  };
}

/** The SDK's metrics alone (tests of the exporter in a child process). */
export function installSdkMetrics(bindAddress: string): () => Promise<string> {
  return installSdkRuntime({ metricsAddress: bindAddress })!;
}
