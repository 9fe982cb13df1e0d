import { signInFrom } from './auth/signIn';
import { ConfigError, credentialKeysDir, loadConfig, requestPolicyFromConfig } from '../config';
import { CredentialKeys } from '../credentials/credentialKeys';
import { connectToTemporal, createTemporalClient, temporalAccessFrom, temporalSecrets } from '../temporal/access';
import { loadApiSettings } from './http/apiConfig';
import { InFlightCalls } from './http/inFlightCalls';
import { serveApi } from './http/serve';
import { ApiKeyStore } from './auth/apiKeys';
import { serveTemporalUiGateway } from './temporalUi/gateway';
import { OPERATOR_SESSION_KEY_PURPOSE, OperatorSessions } from './temporalUi/operatorSessions';
import { createLogger, createMetricsRegistry, createPveflowMetrics, requestCountsFromVisibility } from '../observability';
import { createTracing, tracingSettingsFrom } from '../observability/tracing';
import { requestChoicesFromConfig } from '../requestChoices';
import { pveflowVersion } from '../version';
import { PAGE_TOKEN_KEY_PURPOSE } from './reads/requestList';

/**
 * The API alone (`npm run api`), for a deployment with its own Temporal cluster and workers (docker-compose):
 * no dev server, no simulators, no worker. It refuses to start without API keys: an open API would let anyone
 * approve VMs. It reads and writes Temporal with the same data converter as the workers (TemporalAccess), serves
 * `/codec` for Temporal UI and the CLI, and, given TEMPORAL_UI_URL, the Temporal UI gateway on TEMPORAL_UI_PORT.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  if (!config.TEMPORAL_ADDRESS) throw new ConfigError('TEMPORAL_ADDRESS is required for the API alone (host:port of the Temporal frontend)');
  const api = loadApiSettings(config);
  // Sign-in through a provider is checked now, with the rest of the configuration, before anything connects.
  const signIn = signInFrom(config);
  if (!api.keys) throw new ConfigError('no API keys: set API_KEYS_FILE (or API_KEYS); the API never runs open');
  const access = temporalAccessFrom(config);
  const temporal = access.settings;
  // One JSON line per event, redacted.
  const logger = createLogger({ name: 'api', level: config.LOG_LEVEL, knownSecrets: temporalSecrets(access) });
  const connection = await connectToTemporal(access);
  const tracingSettings = tracingSettingsFrom(config);
  const tracing = tracingSettings ? createTracing(tracingSettings) : undefined;
  const client = createTemporalClient(access, { connection, interceptors: tracing?.clientInterceptors });
  const apiKeys = new ApiKeyStore(api.keys);
  const registry = createMetricsRegistry();
  // The metrics' count is one more of the API's Temporal calls: the stop waits for it too.
  const apiCalls = new InFlightCalls();
  const visibleCounts = requestCountsFromVisibility(client, temporal.taskQueue);
  const metrics = createPveflowMetrics(registry, {
    countRequests: () => apiCalls.run(visibleCounts),
    onCollectError: (metric, err) => logger.warn({ metric, error: (err as Error).message }, 'a metric could not be collected'),
  });
  const codec = access.codec;
  const gateway =
    codec && config.TEMPORAL_UI_URL
      ? await serveTemporalUiGateway({
          host: config.API_HOST,
          port: config.TEMPORAL_UI_PORT,
          upstream: config.TEMPORAL_UI_URL,
          sessions: new OperatorSessions(apiKeys, codec.deriveKey(OPERATOR_SESSION_KEY_PURPOSE)),
          codec: codec.codec,
          namespaces: [temporal.namespace],
          secureCookie: config.PVEFLOW_UI_ORIGIN?.startsWith('https:') ?? false,
        })
      : undefined;
  const uiOrigin = config.PVEFLOW_UI_ORIGIN ?? gateway?.url;
  const serving = await serveApi(
    {
      client,
      inFlight: apiCalls,
      // `/codec` on the API's port: for `temporal --codec-endpoint` (operator key as bearer) and a UI configured to call it.
      ...(codec ? { codec: { codec: codec.codec, allowedOrigin: uiOrigin ?? `http://${config.API_HOST}:${config.API_PORT}`, namespaces: [temporal.namespace] } } : {}),
      // Page tokens every API process takes: their MAC key derived from the payload key ring (else this process's own).
      ...(codec ? { pageTokenKey: codec.deriveKey(PAGE_TOKEN_KEY_PURPOSE) } : {}),
      taskQueue: temporal.taskQueue,
      policy: requestPolicyFromConfig(config),
      choices: requestChoicesFromConfig(config),
      quotas: config.PVEFLOW_QUOTAS,
      apiKeys,
      ...signIn,
      // The per-request keys the workers sealed guest logins with: the same directory as every worker's.
      credentialKeys: new CredentialKeys(credentialKeysDir(config)),
      webhookSecret: api.webhookSecret,
      timings: api.timings,
      metrics: { registry, metrics, token: config.METRICS_TOKEN },
      logger,
    },
    config.API_HOST,
    config.API_PORT,
  );
  logger.info(
    {
      version: pveflowVersion,
      url: `http://${config.API_HOST}:${serving.port}`,
      temporal: temporal.address,
      temporalSecurity: access.security,
      namespace: temporal.namespace,
      taskQueue: temporal.taskQueue,
      payloads: codec ? `encrypted (${codec.source})` : 'in clear',
      ...(gateway ? { temporalUi: gateway.url } : {}),
    },
    'API listening',
  );
  const stop = () => {
    void gateway?.close();
    // The connection closes only after the API's calls in flight have settled (serveApi's stop).
    void serving
      .stop()
      .then(() => Promise.allSettled([tracing?.shutdown()]))
      .then(() => connection.close())
      .then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err) => {
  console.error(err instanceof ConfigError ? `[pveflow] ${err.message}` : err);
  process.exit(1);
});
