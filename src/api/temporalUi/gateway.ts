import { createServer, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { PayloadCodec } from '@temporalio/common';
import express, { type Request, type RequestHandler, type Response } from 'express';
import { listenOn } from '../../net/listenOn';
import { createCodecServerRouter } from './codecServer';
import { OperatorSessions, SESSION_COOKIE } from './operatorSessions';
import { signInPage } from './signInPage';

/**
 * Temporal UI for operators, decrypting out of the box. The gateway stands in front of a Temporal UI server (the dev
 * server's, or the UI server of a cluster) and serves, on one origin:
 * - `/pveflow/sign-in`: an operator gives their API key once; the browser keeps a signed, HttpOnly, SameSite=Strict
 *   session cookie (OperatorSessions);
 * - `/codec/decode`, `/codec/encode`: pveflow's codec for that session (or an operator key as a bearer, for the CLI);
 * - everything else: Temporal UI itself, for signed-in operators only.
 * The UI server is configured with the relative codec endpoint `/codec`, so the browser asks the origin it is on —
 * `localhost` or `127.0.0.1`, or any name the gateway is reached by — and the cookie goes with it, as same-origin
 * requests carry cookies. Nobody without a session or an operator key gets a payload decoded, or the UI at all.
 */
export interface TemporalUiGatewayOptions {
  /** The Temporal UI server behind the gateway, e.g. `http://127.0.0.1:41233` (on loopback: nobody else reaches it). */
  upstream: string;
  sessions: OperatorSessions;
  codec: PayloadCodec;
  namespaces: readonly string[];
  /** Mark the session cookie Secure: the gateway is reached over HTTPS (behind a TLS proxy, it cannot tell itself). */
  secureCookie?: boolean;
}

/** What the UI server must be told for the gateway's codec to be used: its codec endpoint, relative to its origin. */
export const GATEWAY_CODEC_ENDPOINT = '/codec';

export function createTemporalUiGateway(opts: TemporalUiGatewayOptions): express.Express {
  const upstream = new URL(opts.upstream);
  const app = express();
  app.disable('x-powered-by');
  const secureCookie = (req: Request) => opts.secureCookie === true || req.protocol === 'https';

  app.get('/pveflow/sign-in', (req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    res.type('html').send(signInPage({ next: safeNext(req.query.next), failed: false }));
  });
  app.post('/pveflow/sign-in', express.urlencoded({ extended: false, limit: '4kb' }), (req, res) => {
    const key = typeof req.body?.key === 'string' ? req.body.key.trim() : '';
    const next = safeNext(req.body?.next);
    const operator = key ? opts.sessions.operatorFor(key) : undefined;
    res.setHeader('Cache-Control', 'no-store');
    if (!operator)
      return void res
        .status(401)
        .type('html')
        .send(signInPage({ next, failed: true }));
    opts.sessions.start(res, operator, secureCookie(req));
    res.redirect(303, next);
  });
  app.post('/pveflow/sign-out', (_req, res) => {
    opts.sessions.end(res);
    res.redirect(303, '/pveflow/sign-in');
  });

  app.use(
    GATEWAY_CODEC_ENDPOINT,
    createCodecServerRouter({
      codec: opts.codec,
      namespaces: opts.namespaces,
      // The UI calls its own origin: whatever host the operator reached the gateway by.
      allowedOrigin: (req) => `${req.protocol}://${req.headers.host ?? ''}`,
      authorize: (req) => {
        if (opts.sessions.operatorOf(req)) return true;
        const key = /^Bearer\s+(\S+)$/i.exec(req.header('authorization') ?? '')?.[1];
        return key !== undefined && opts.sessions.operatorFor(key) !== undefined;
      },
    }),
  );

  const signedIn: RequestHandler = (req, res, next) => {
    if (opts.sessions.operatorOf(req)) return next();
    const wantsPage = req.method === 'GET' && (req.headers.accept ?? '').includes('text/html');
    if (wantsPage) return void res.redirect(302, `/pveflow/sign-in?next=${encodeURIComponent(req.originalUrl)}`);
    res.setHeader('WWW-Authenticate', 'Cookie realm="pveflow Temporal UI"');
    res.status(401).json({ error: 'unauthorized', detail: 'Temporal UI is for pveflow operators: sign in at /pveflow/sign-in' });
  };
  app.use(signedIn, (req, res) => proxy(req, res, upstream));
  // Express's own error page carries the stack trace outside production: the gateway faces browsers, never that.
  app.use((_err: unknown, _req: Request, res: Response, _next: express.NextFunction) => {
    if (res.headersSent) return void res.destroy();
    res.status(500).json({ error: 'internal error', detail: 'the Temporal UI gateway failed on this request; see its log' });
  });
  return app;
}

/** Where to go after signing in: a path on this origin, never another site. */
function safeNext(value: unknown): string {
  return typeof value === 'string' && /^\/(?![/\\])/.test(value) ? value : '/';
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/** One request passed through to the UI server, streamed both ways; the session cookie stays with the gateway. */
function proxy(req: Request, res: Response, upstream: URL): void {
  const headers: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(req.headers)) if (!HOP_BY_HOP.has(name)) headers[name] = value;
  headers.cookie = withoutSessionCookie(req.headers.cookie);
  if (!headers.cookie) delete headers.cookie;
  const forward = httpRequest({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.originalUrl, headers, timeout: 60_000 }, (answer) => {
    const out: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(answer.headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
    res.writeHead(answer.statusCode ?? 502, out);
    answer.pipe(res);
  });
  forward.on('timeout', () => forward.destroy(new Error('Temporal UI did not answer within 60 s')));
  forward.on('error', (err) => {
    if (res.headersSent) return void res.destroy();
    res.status(502).json({ error: 'Temporal UI unavailable', detail: `the Temporal UI server behind this gateway did not answer: ${err.message}` });
  });
  req.pipe(forward);
}

function withoutSessionCookie(header: string | undefined): string {
  return (header ?? '')
    .split(';')
    .map((p) => p.trim())
    .filter((p) => p && !p.startsWith(`${SESSION_COOKIE}=`))
    .join('; ');
}

export interface RunningGateway {
  url: string;
  close(): Promise<void>;
}

/** The gateway on its own listener (the port operators know as Temporal UI's). */
export async function serveTemporalUiGateway(opts: TemporalUiGatewayOptions & { host: string; port: number }): Promise<RunningGateway> {
  const server = createServer(createTemporalUiGateway(opts));
  const port = await listenOn(server, opts.host, opts.port, { what: 'the Temporal UI gateway', portSetting: 'TEMPORAL_UI_PORT' });
  return {
    url: `http://${opts.host}:${port}`,
    close: () =>
      new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      }),
  };
}
