import type { PayloadCodec } from '@temporalio/common';
import type { Client } from '@temporalio/client';
import { pveflowVersion } from '../version';
import express, { type ErrorRequestHandler, type RequestHandler } from 'express';
import type { RequestPolicy } from '../domain/requestPolicy';
import type { QuotaConfig } from '../domain/quotas';
import { defaultApiTimings, type ApiTimings } from './http/apiConfig';
import type { ApiKeyStore } from './auth/apiKeys';
import { authenticate, principalOf } from './auth/authenticate';
import { signInRoutes } from './auth/oidcRoutes';
import { signInAuthentication } from './auth/sessionAuth';
import type { SignIn } from './auth/signIn';
import { refuseBlankJson, requireJsonBody } from './http/contentType';
import { methodNotAllowed } from './http/methodNotAllowed';
import { apiContext } from './http/context';
import type { InFlightCalls } from './http/inFlightCalls';
import type { CredentialKeys } from '../credentials/credentialKeys';
import { buildOpenApiDocument } from './openapi';
import { createCodecServerRouter } from './temporalUi/codecServer';
import { consoleRoutes } from './http/console';
import { problem, tooMany } from './http/problems';
import { classRoutes } from './routes/classes';
import { deviceRequestRoutes } from './routes/deviceRequests';
import { docsRoutes } from './routes/docs';
import { sessionRoutes } from './routes/session';
import { templateRoutes } from './routes/templates';
import { vmOperationRoutes } from './routes/vmOperations';
import { imageRoutes } from './routes/images';
import { defaultRequestChoiceSettings, type RequestChoiceSettings } from '../requestChoices';
import { webhookRoutes } from './routes/webhooks';
import { httpMetrics, metricsEndpoint, type Logger, type MetricsRegistry, type PveflowMetrics } from '../observability';

export interface AppDeps {
  client: Client;
  taskQueue: string;
  /** Fixed into every request submitted through this API (see requestPolicyFromConfig). */
  policy: RequestPolicy;
  /** Quotas per org (PVEFLOW_QUOTAS); unset: none. */
  quotas?: QuotaConfig;
  /** Who may call the API. An empty store locks every authenticated route. */
  apiKeys: ApiKeyStore;
  /** Sign-in through the organisation's OpenID provider (OIDC_*): console sessions and the provider's bearer tokens. */
  signIn?: SignIn;
  /** The webhook intake's HMAC secret; without it the intake answers 503. */
  webhookSecret?: string;
  timings?: Partial<ApiTimings>;
  /** Serves Temporal UI's remote codec endpoint at /codec for operators' keys, answering `allowedOrigin` only. */
  codec?: { codec: PayloadCodec; allowedOrigin: string; namespaces: string[] };
  /** Serves Prometheus metrics at /metrics (bearer `token` when set) and counts every request by route template. */
  metrics?: { registry: MetricsRegistry; metrics: PveflowMetrics; token?: string; append?: () => Promise<string> };
  /** Where unexpected errors are logged (redacted JSON); unset: stderr. */
  logger?: Logger;
  /** The per-request keys of guest credentials (CREDENTIAL_KEYS_DIR, shared with the workers); unset: reveals answer 503. */
  credentialKeys?: CredentialKeys;
  /** The image catalogue's configuration and the bounds of a request's choices (requestChoicesFromConfig); unset: the defaults. */
  choices?: RequestChoiceSettings;
  /**
   * The key of the list's page tokens' MAC: derived from the payload key ring (PAGE_TOKEN_KEY_PURPOSE), so that every
   * API process takes the others' tokens; unset: this process's own.
   */
  pageTokenKey?: Buffer;
  /** Where the API's Temporal calls are counted, for the stop to wait for them (serveApi); unset: the app's own. */
  inFlight?: InFlightCalls;
}

/** The HTTP API. Exported as a factory so tests build it with their own Temporal client, keys and timings. */
export function createApp(deps: AppDeps): express.Express {
  const ctx = apiContext(
    {
      client: deps.client,
      taskQueue: deps.taskQueue,
      policy: deps.policy,
      quotas: deps.quotas ?? {},
      timings: { ...defaultApiTimings, ...deps.timings },
      credentialKeys: deps.credentialKeys,
      choices: deps.choices ?? defaultRequestChoiceSettings,
      pageTokenKey: deps.pageTokenKey,
    },
    deps.inFlight,
  );
  const app = express();
  app.disable('x-powered-by');
  if (deps.metrics) {
    app.use(httpMetrics(deps.metrics.metrics));
    app.get('/metrics', metricsEndpoint(deps.metrics.registry, { token: deps.metrics.token, append: deps.metrics.append }));
  }

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok', version: pveflowVersion });
  });
  app.get('/readyz', async (_req, res) => {
    try {
      await ctx.temporal(() => deps.client.workflowService.getSystemInfo({}));
      res.json({ status: 'ready' });
    } catch {
      problem(res, 503, 'not ready', 'Temporal is not reachable');
    }
  });
  if (deps.codec) {
    // Temporal UI's remote codec: operators (and nobody else) read decrypted payloads in the UI.
    app.use(
      '/codec',
      createCodecServerRouter({
        codec: deps.codec.codec,
        allowedOrigin: deps.codec.allowedOrigin,
        namespaces: deps.codec.namespaces,
        authorize: (req) => {
          const key = /^Bearer\s+(\S+)$/i.exec(req.header('authorization') ?? '')?.[1];
          return key !== undefined && deps.apiKeys.authenticate(key)?.role === 'operator';
        },
      }),
    );
  }
  const document = buildOpenApiDocument(ctx.choices);
  // A method a documented path does not serve is 405 with Allow, before any route can answer it otherwise.
  app.use(methodNotAllowed(document));
  app.use('/api', docsRoutes(document));
  // Before the JSON parser: the signature is over the raw bytes, so the intake reads the body itself.
  app.use('/api/hooks', webhookRoutes(ctx, deps.webhookSecret));

  // Who is calling comes first: an unknown caller learns nothing, not even that its body was malformed.
  const keyAuth = authenticate(deps.apiKeys);
  const auth = deps.signIn ? signInAuthentication(deps.signIn, keyAuth) : keyAuth;
  app.use('/auth', signInRoutes(deps.signIn));
  // Then how much it may write, then what it sent: a body of another type is named as such, not as missing fields.
  const writes: RequestHandler = (req, res, next) => {
    if (req.method !== 'POST') return next();
    const taken = ctx.writes.take(principalOf(res).id);
    if (!taken.ok) return tooMany(res, taken);
    next();
  };
  const json = [requireJsonBody(), express.json({ limit: '256kb', verify: refuseBlankJson })];
  app.use('/api/device_requests', auth, writes, json, deviceRequestRoutes(ctx), vmOperationRoutes(ctx));
  app.use('/api/classes', auth, writes, json, classRoutes(ctx));
  app.use('/api/templates', auth, templateRoutes(ctx));
  app.use('/api/images', auth, imageRoutes(ctx));
  app.use('/api/session', auth, sessionRoutes(ctx));

  app.use('/api', (req, res) => problem(res, 404, 'not found', `no operation ${req.method} ${req.originalUrl.split('?')[0]} (see /api/docs)`));
  // The web console, after every /api route: it is one more client of them, and may never shadow one.
  app.use(consoleRoutes());
  const onError: ErrorRequestHandler = (err, _req, res, _next) => {
    if (res.headersSent) return;
    // Malformed JSON and oversized bodies are the caller's mistake; say so without echoing the body back.
    const status = typeof err?.status === 'number' && err.status >= 400 && err.status < 500 ? err.status : 500;
    if (status === 413) return problem(res, 413, 'body too large', 'the limit is 256 kB');
    if (status < 500) {
      // The body parser's other refusals (not JSON, a charset or encoding it cannot read) are all bad input.
      const reason = err?.type === 'entity.parse.failed' ? 'not valid JSON' : String(err?.message ?? 'unreadable');
      res.status(400).json({ error: 'invalid request', detail: `the body is ${reason === 'not valid JSON' ? reason : `unreadable: ${reason}`}`, issues: [{ field: '(body)', reason }] });
      return;
    }
    if (deps.logger) deps.logger.error({ error: err instanceof Error ? (err.stack ?? err.message) : String(err) }, 'API error');
    else console.error('[pveflow] API error:', err);
    problem(res, 500, 'internal error');
  };
  app.use(onError);
  return app;
}
