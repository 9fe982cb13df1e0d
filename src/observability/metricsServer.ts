import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
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
  const server: Server = await new Promise((ok, fail) => {
    const s = app.listen(opts.port, opts.host, () => ok(s));
    s.once('error', fail);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${opts.host}:${port}/metrics`,
    close: () =>
      new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      }),
  };
}
