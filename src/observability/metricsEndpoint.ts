import type { RequestHandler } from 'express';
import type { MetricsRegistry } from './registry';

/** `GET /metrics` for Prometheus. Never cached; a failing render is a 500 the scraper records as a failed scrape. */
export function metricsEndpoint(registry: MetricsRegistry): RequestHandler {
  return async (_req, res) => {
    try {
      const text = await registry.metrics();
      res.setHeader('Content-Type', registry.contentType);
      res.setHeader('Cache-Control', 'no-store');
      res.send(text);
    } catch {
      res.status(500).type('text/plain').send('metrics could not be rendered\n');
    }
  };
}
