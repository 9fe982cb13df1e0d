import { Counter, Gauge, Histogram } from 'prom-client';
import type { MetricsRegistry } from './registry';

/**
 * Every metric pveflow exports, by name, in one place. Names follow Prometheus' conventions (`_total` counters,
 * base units: seconds); label values are bounded sets (states, stages, path templates, error classes), never ids,
 * so the number of series does not grow with the number of requests.
 *
 * The Temporal SDK's own worker metrics (task slots, poll latencies, sticky cache) come from the Core runtime's
 * Prometheus exporter (`Runtime.install({ telemetryOptions: { metrics: { prometheus: { bindAddress } } } })`), on
 * its own port: they are not re-exported here.
 */
export type UpstreamSystem = 'proxmox' | 'netbird' | 'sftp';
/**
 * What pveflow's HTTP clients report after each call (their `onCall` option): `operation` is a bounded template
 * (`GET /nodes/{node}/qemu/{vmid}/config`), `outcome` is `ok` or the error class. Kept free of the registry so the
 * clients need nothing but this signature.
 */
export type UpstreamCallHook = (system: UpstreamSystem, operation: string, outcome: string, seconds: number) => void;

/** The hook that counts and times each call in the metrics. */
export function upstreamCallRecorder(metrics: Pick<PveflowMetrics, 'upstreamCalls' | 'upstreamCallDuration'>): UpstreamCallHook {
  return (system, operation, outcome, seconds) => {
    try {
      metrics.upstreamCallDuration.observe({ system, operation }, seconds);
      metrics.upstreamCalls.inc({ system, operation, outcome });
    } catch {
      // Counting a call must never fail it.
    }
  };
}

export type SyncDriftKind = 'vanished' | 'moved' | 'state_changed' | 'resized' | 'orphan';

/**
 * prom-client's instruments as pveflow's code sees them: every label required, so that tsc refuses a series without
 * its labels (prom-client's own types make them optional, and it would export an unlabelled series).
 */
type Labels<L extends string> = Record<L, string>;
interface LabelledCounter<L extends string> {
  inc(labels: Labels<L>, value?: number): void;
}
interface LabelledGauge<L extends string> {
  set(labels: Labels<L>, value: number): void;
  reset(): void;
}
interface LabelledHistogram<L extends string> {
  observe(labels: Labels<L>, value: number): void;
}

export interface PveflowMetrics {
  /** `pveflow_requests{status}`: open requests per status, from Temporal visibility at scrape time. */
  requests: LabelledGauge<'status'>;
  /** `pveflow_builds_total{outcome}`: finished build attempts (completed, failed, cancelled). */
  builds: LabelledCounter<'outcome'>;
  /** `pveflow_build_stage_duration_seconds{stage,outcome}`: how long each build stage took (clone, wait for IP...). */
  buildStageDuration: LabelledHistogram<'stage' | 'outcome'>;
  /** `pveflow_upstream_calls_total{system,operation,outcome}`: outcome is `ok` or the error class. */
  upstreamCalls: LabelledCounter<'system' | 'operation' | 'outcome'>;
  /** `pveflow_upstream_call_duration_seconds{system,operation}`. */
  upstreamCallDuration: LabelledHistogram<'system' | 'operation'>;
  /** `pveflow_sync_drift_total{kind}`: what cluster sync found different from the requests' records. */
  syncDrift: LabelledCounter<'kind'>;
  /** `pveflow_sync_orphan_vms`: VMs in the pool that no request owns, as of the last sync run. */
  syncOrphans: LabelledGauge<never>;
  /** `pveflow_http_requests_total{method,route,status}` and its duration: the API's own traffic. */
  httpRequests: LabelledCounter<'method' | 'route' | 'status'>;
  httpRequestDuration: LabelledHistogram<'method' | 'route'>;
}

/** Seconds. Builds take from seconds (zero-latency simulator) to many minutes (a full clone, a slow first boot). */
const STAGE_BUCKETS = [0.05, 0.25, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];
/** Seconds. API calls: milliseconds normally, PVE's lock waits and NetBird's rate limiter up to tens of seconds. */
const CALL_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface MetricsOptions {
  /** Counts open requests by status (e.g. a visibility count per status); refreshes `pveflow_requests` per scrape. */
  countRequests?: () => Promise<Record<string, number>>;
  /**
   * Told when a collector fails. The gauge keeps what it had and the scrape goes on: prom-client would fail the whole
   * scrape, and one unreachable visibility store must not blind Prometheus to everything else.
   */
  onCollectError?: (metric: string, err: unknown) => void;
}

export function createPveflowMetrics(registry: MetricsRegistry, opts: MetricsOptions = {}): PveflowMetrics {
  const { countRequests, onCollectError } = opts;
  const registers = [registry];
  return {
    requests: new Gauge({
      name: 'pveflow_requests',
      help: 'Open device requests by status (Temporal visibility, counted at scrape time).',
      labelNames: ['status'],
      registers,
      ...(countRequests && {
        async collect(this: Gauge<'status'>) {
          let counts: Record<string, number>;
          try {
            counts = await countRequests();
          } catch (err) {
            onCollectError?.('pveflow_requests', err);
            return;
          }
          this.reset();
          for (const [status, n] of Object.entries(counts)) this.set({ status }, n);
        },
      }),
    }),
    builds: new Counter({
      name: 'pveflow_builds_total',
      help: 'Finished build attempts by outcome.',
      labelNames: ['outcome'],
      registers,
    }),
    buildStageDuration: new Histogram({
      name: 'pveflow_build_stage_duration_seconds',
      help: 'Duration of each build stage, by stage and outcome.',
      labelNames: ['stage', 'outcome'],
      registers,
      buckets: STAGE_BUCKETS,
    }),
    upstreamCalls: new Counter({
      name: 'pveflow_upstream_calls_total',
      help: 'Calls to Proxmox VE, NetBird and the nodes over SFTP, by operation and outcome (ok or the error class).',
      labelNames: ['system', 'operation', 'outcome'],
      registers,
    }),
    upstreamCallDuration: new Histogram({
      name: 'pveflow_upstream_call_duration_seconds',
      help: 'Latency of calls to Proxmox VE, NetBird and SFTP, by operation.',
      labelNames: ['system', 'operation'],
      registers,
      buckets: CALL_BUCKETS,
    }),
    syncDrift: new Counter({
      name: 'pveflow_sync_drift_total',
      help: 'Differences cluster sync found between the cluster and the requests, by kind.',
      labelNames: ['kind'],
      registers,
    }),
    syncOrphans: new Gauge({
      name: 'pveflow_sync_orphan_vms',
      help: 'VMs in the pool that no request owns, as of the last sync run.',
      labelNames: [],
      registers,
    }),
    httpRequests: new Counter({
      name: 'pveflow_http_requests_total',
      help: 'API requests by method, route template and status code.',
      labelNames: ['method', 'route', 'status'],
      registers,
    }),
    httpRequestDuration: new Histogram({
      name: 'pveflow_http_request_duration_seconds',
      help: 'API request latency by method and route template.',
      labelNames: ['method', 'route'],
      registers,
      buckets: CALL_BUCKETS,
    }),
  };
}

/**
 * Times one upstream call and counts it with its outcome. `classify` turns a failure into a bounded label
 * (PveApiError's `errorClass`, SftpError's `kind`, a NetBird status class); the error is rethrown untouched.
 */
export async function measureUpstreamCall<T>(
  metrics: Pick<PveflowMetrics, 'upstreamCalls' | 'upstreamCallDuration'>,
  call: { system: UpstreamSystem; operation: string },
  fn: () => Promise<T>,
  now: () => number = () => performance.now(),
): Promise<T> {
  const started = now();
  let outcome = 'ok';
  try {
    return await fn();
  } catch (err) {
    outcome = upstreamErrorClass(err);
    throw err;
  } finally {
    metrics.upstreamCallDuration.observe(call, (now() - started) / 1000);
    metrics.upstreamCalls.inc({ ...call, outcome });
  }
}

/** A bounded label for a failed call, from what pveflow's clients already know about their errors. */
export function upstreamErrorClass(err: unknown): string {
  const e = err as { errorClass?: unknown; kind?: unknown; status?: unknown; name?: unknown } | null;
  if (typeof e?.errorClass === 'string') return e.errorClass; // PveApiError
  if (typeof e?.kind === 'string') return e.kind; // SftpError
  if (e?.name === 'NetbirdApiError') {
    const status = typeof e.status === 'number' ? e.status : undefined;
    if (status === undefined) return 'transport';
    if (status === 401) return 'auth';
    if (status === 403) return 'permission';
    if (status === 404) return 'notFound';
    if (status === 429) return 'rateLimited';
    return status >= 500 ? 'server' : 'param';
  }
  return 'other';
}

/**
 * A PVE path as a bounded label: `/nodes/pve1/qemu/10042/config` → `/nodes/{node}/qemu/{vmid}/config`.
 * Node names, VMIDs, UPIDs and storage ids are the only variable segments pveflow sends.
 */
export function pveOperation(method: string, path: string): string {
  const template = path
    .replace(/^\/nodes\/[^/]+/, '/nodes/{node}')
    .replace(/\/(qemu|lxc)\/\d+/, '/$1/{vmid}')
    .replace(/\/tasks\/[^/]+/, '/tasks/{upid}')
    .replace(/\/storage\/[^/]+/, '/storage/{storage}')
    .replace(/^\/cluster\/ha\/resources\/[^/]+/, '/cluster/ha/resources/{sid}')
    .replace(/^\/pools\/[^/]+/, '/pools/{poolid}');
  return `${method} ${template}`;
}
