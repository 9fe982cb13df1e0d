import express, { type Request, type Response } from 'express';
import type { NetbirdAccount } from './account';
import type { NetbirdContract } from './contract';
import { NetbirdStatusError } from './errors';
import { injectedFailure, type NetbirdFaults } from './faults';
import type { ClientRateLimiter } from './rateLimiter';
import { routes, type Route } from './routes';

/** One answered API request, as a test observes it (to hold every response against the spec). */
export interface NetbirdExchange {
  method: string;
  /** The spec's path template, e.g. `/api/groups/{groupId}`. */
  template: string;
  status: number;
  body: unknown;
}

export interface NetbirdAppDeps {
  account: NetbirdAccount;
  contract: NetbirdContract;
  tokens: ReadonlySet<string>;
  dnsDomain: string;
  /** The user the personal access tokens belong to. */
  tokenOwnerId: string | undefined;
  faults(): NetbirdFaults;
  /** The API rate limiter while the `rateLimit` fault is on. */
  rateLimiter(): ClientRateLimiter | undefined;
  counts: Map<string, number>;
  onExchange?: (exchange: NetbirdExchange) => void;
}

/**
 * The HTTP face of the simulated management server. Per request, in NetBird's order: authentication, then the
 * body (400 "couldn't parse JSON request" when it is not JSON, 400 naming the problem when the spec's schema
 * rejects it), then the account's own rules (404/409/422 with NetBird's messages). Injected faults come first: they
 * stand for a dead, wedged or overloaded server, or a proxy in front of it; the rate limiter comes next, before
 * authentication, as NetBird's middleware does.
 */
export function createNetbirdApp(deps: NetbirdAppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  // Raw body: authentication must be decided before the body is parsed, as NetBird's middleware does.
  const rawBody = express.raw({ type: () => true, limit: '1mb' });

  for (const route of routes) {
    const expressPath = route.template.replace(/\{(\w+)\}/g, ':$1');
    const method = route.method.toLowerCase() as 'get' | 'post' | 'put' | 'delete';
    app[method](expressPath, rawBody, (req, res) => serve(deps, route, req, res));
  }

  app.use((req, res) => {
    res.status(404).json({ message: `${req.method} ${req.path} is not served by the NetBird simulator`, code: 404 });
  });
  return app;
}

async function serve(deps: NetbirdAppDeps, route: Route, req: Request, res: Response): Promise<void> {
  const key = `${route.method} ${route.template}`;
  deps.counts.set(key, (deps.counts.get(key) ?? 0) + 1);

  const reply = (status: number, body: unknown, headers: Record<string, string> = {}) => {
    deps.onExchange?.({ method: route.method, template: route.template, status, body });
    res.status(status).set(headers).json(body);
  };
  const fail = (status: number, message: string, headers?: Record<string, string>) => reply(status, { message, code: status }, headers);

  const faults = deps.faults();
  if (faults.down === 'reset') {
    // A request on a connection kept alive from before the server "died".
    req.socket.resetAndDestroy();
    return;
  }
  if (faults.down === 'unavailable') return fail(503, 'service unavailable');
  if (faults.hang && !(await heldOpen(res, faults.hang.answerAfterMs))) return;
  if (faults.latencyMs > 0 && !(await heldOpen(res, faults.latencyMs))) return;
  const injected = injectedFailure(faults);
  if (injected !== undefined) {
    const retryAfter: Record<string, string> = faults.retryAfterSeconds !== undefined && (injected === 429 || injected === 503) ? { 'Retry-After': String(faults.retryAfterSeconds) } : {};
    fail(injected, injected === 429 ? RATE_LIMITED : 'internal server error', retryAfter);
    return;
  }
  const limiter = deps.rateLimiter();
  // Keyed by the personal access token, as NetBird's auth middleware does; a request without one is not limited.
  const pat = /^Token (\S+)$/.exec(req.get('authorization') ?? '')?.[1];
  const decision = pat === undefined ? undefined : limiter?.take(pat);
  if (limiter && decision && !decision.allowed) {
    const headers: Record<string, string> = limiter.limit.retryAfter === false ? {} : { 'Retry-After': String(decision.retryAfterSeconds) };
    return fail(429, RATE_LIMITED, headers);
  }

  const auth = req.get('authorization');
  if (!auth) return fail(401, 'no valid authentication provided');
  const [scheme, token] = auth.split(' ', 2);
  if (scheme !== 'Token' || !token || !deps.tokens.has(token)) return fail(401, 'token invalid');

  let body: unknown;
  if (route.hasBody) {
    try {
      const raw = Buffer.isBuffer(req.body) ? req.body.toString('utf8') : '';
      body = JSON.parse(raw);
    } catch {
      return fail(400, "couldn't parse JSON request");
    }
    const problems = deps.contract.checkRequest(route.method, route.template, body);
    if (problems.length) return fail(400, `couldn't parse JSON request: ${problems.join('; ')}`);
  }

  try {
    const result = route.handle({
      params: req.params as Record<string, string>,
      query: flatQuery(req.query),
      body,
      view: { account: deps.account, dnsDomain: deps.dnsDomain, currentUserId: deps.tokenOwnerId },
    });
    reply(200, result);
  } catch (err) {
    if (err instanceof NetbirdStatusError) return fail(err.status, err.message);
    // A simulator bug, not a NetBird answer: say so loudly, and answer the way NetBird answers the unexpected.
    process.emitWarning(`NetBird simulator failed on ${key}: ${err instanceof Error ? err.stack : String(err)}`);
    fail(500, 'internal server error');
  }
}

/** NetBird's rate limiter's own words (`status.TooManyRequests` in its auth middleware, through util.WriteError). */
const RATE_LIMITED = 'too many requests';

/**
 * Holds the request for `ms` (forever when undefined); false when the client gave up (closed the connection)
 * meanwhile, in which case there is nobody left to answer.
 */
function heldOpen(res: Response, ms: number | undefined): Promise<boolean> {
  if (res.destroyed || res.writableEnded) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onClose = () => {
      if (timer) clearTimeout(timer);
      resolve(false);
    };
    const timer =
      ms === undefined
        ? undefined
        : setTimeout(() => {
            res.off('close', onClose);
            resolve(!res.destroyed);
          }, ms);
    res.once('close', onClose);
  });
}

function flatQuery(query: Request['query']): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(query)) out[k] = typeof v === 'string' ? v : undefined;
  return out;
}
