import { timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import type { MetricsRegistry } from './registry';

export interface MetricsEndpointOptions {
  /** When set, a scrape must carry `Authorization: Bearer <token>` (Prometheus' `authorization` scrape setting). */
  token?: string;
  /** More exposition text appended to ours (the Temporal SDK's own worker metrics); failures are left out, not fatal. */
  append?: () => Promise<string>;
}

/** `GET /metrics` for Prometheus. Never cached; a failing render is a 500 the scraper records as a failed scrape. */
export function metricsEndpoint(registry: MetricsRegistry, opts: MetricsEndpointOptions = {}): RequestHandler {
  const expected = opts.token ? Buffer.from(opts.token) : undefined;
  return async (req, res) => {
    if (expected) {
      const given = Buffer.from(/^Bearer\s+(\S+)$/i.exec(req.header('authorization') ?? '')?.[1] ?? '');
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        res.status(401).setHeader('WWW-Authenticate', 'Bearer realm="metrics"').type('text/plain').send('metrics need the bearer token METRICS_TOKEN\n');
        return;
      }
    }
    try {
      const [ours, extra] = await Promise.all([registry.metrics(), opts.append?.().catch(() => '') ?? Promise.resolve('')]);
      res.setHeader('Content-Type', registry.contentType);
      res.setHeader('Cache-Control', 'no-store');
      res.send(extra ? `${ours}${extra.endsWith('\n') ? extra : `${extra}\n`}` : ours);
    } catch {
      res.status(500).type('text/plain').send('metrics could not be rendered\n');
    }
  };
}
