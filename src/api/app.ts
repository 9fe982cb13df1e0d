import type { Client } from '@temporalio/client';
import express, { type ErrorRequestHandler } from 'express';
import { problem } from './problems';
import { deviceRequestRoutes } from './routes/deviceRequests';

export interface AppDeps {
  client: Client;
  taskQueue: string;
}

/** The HTTP API. Exported as a factory so tests build it with their own Temporal client. */
export function createApp(deps: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(express.json({ limit: '256kb' }));

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    try {
      await deps.client.workflowService.getSystemInfo({});
      res.json({ status: 'ready' });
    } catch {
      problem(res, 503, 'not ready', 'Temporal is not reachable');
    }
  });

  app.use('/api/device_requests', deviceRequestRoutes(deps));

  app.use('/api', (_req, res) => problem(res, 404, 'not found'));
  const onError: ErrorRequestHandler = (err, _req, res, _next) => {
    // Malformed JSON and oversized bodies are the caller's mistake; say so without echoing the body back.
    const status = typeof err?.status === 'number' && err.status >= 400 && err.status < 500 ? err.status : 500;
    if (status === 400) return problem(res, 400, 'invalid request', 'the body is not valid JSON');
    if (status === 413) return problem(res, 413, 'body too large', 'the limit is 256 kB');
    if (status < 500) return problem(res, status, 'invalid request');
    problem(res, 500, 'internal error');
  };
  app.use(onError);
  return app;
}
