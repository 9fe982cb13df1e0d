import { collectDefaultMetrics, Registry } from 'prom-client';

/**
 * pveflow's metrics live in a prom-client registry: its counters, gauges and histograms, its text exposition
 * (format 0.0.4), and its default metrics — process CPU and memory, open file descriptors, the event loop's lag,
 * garbage collection — which tell an operator whether a slow build is the worker's own process.
 */
export type MetricsRegistry = Registry;

/**
 * A registry per process (the API's, the worker's; one for both under `npm start`). The default metrics observe the
 * whole process, so a process that builds several registries (tests) may leave them out.
 */
export function createMetricsRegistry(opts: { defaultMetrics?: boolean } = {}): MetricsRegistry {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  return registry;
}
