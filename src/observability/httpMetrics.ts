import type { RequestHandler } from 'express';
import type { PveflowMetrics } from './metrics';

/**
 * Counts and times every API request by method, route template and status. The template (`/api/device_requests/:serial`)
 * is known only once a route matched, so it is read when the response finishes; a request no route took is
 * `unmatched`, so that probing random URLs cannot create new series.
 */
export function httpMetrics(metrics: Pick<PveflowMetrics, 'httpRequests' | 'httpRequestDuration'>): RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    res.once('finish', () => {
      const routePath = (req.route as { path?: unknown } | undefined)?.path;
      const route = typeof routePath === 'string' ? `${req.baseUrl}${routePath === '/' && req.baseUrl ? '' : routePath}` : 'unmatched';
      metrics.httpRequests.inc({ method: req.method, route, status: String(res.statusCode) });
      metrics.httpRequestDuration.observe({ method: req.method, route }, (performance.now() - started) / 1000);
    });
    next();
  };
}
