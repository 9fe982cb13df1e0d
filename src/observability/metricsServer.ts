import { createServer } from 'node:http';
import express from 'express';
import { listenOn } from '../net/listenOn';
import { metricsEndpoint, type MetricsEndpointOptions } from './metricsEndpoint';
import type { MetricsRegistry } from './registry';

/** The worker's own `GET /metrics` (a worker has no API to mount it on). */
export interface RunningMetricsServer {
  url: string;
  close(): Promise<void>;
}

export async function startMetricsServer(opts: { host: string; port: number; registry: MetricsRegistry } & MetricsEndpointOptions): Promise<RunningMetricsServer> {
  const app = express();
  app.disable('x-powered-by');
  app.get('/metrics', metricsEndpoint(opts.registry, opts));
  const server = createServer(app);
  const port = await listenOn(server, opts.host, opts.port, { what: "the worker's metrics server", portSetting: 'WORKER_METRICS_PORT' });
  return {
    url: `http://${opts.host}:${port}/metrics`,
    close: () =>
      new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      }),
  };
}
