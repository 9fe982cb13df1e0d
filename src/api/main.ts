import { Client, Connection } from '@temporalio/client';
import { ConfigError, loadConfig, requestPolicyFromConfig } from '../config';
import { temporalSettings } from '../temporal/settings';
import { loadApiSettings } from './apiConfig';
import { createApp } from './app';
import { ApiKeyStore } from './auth/apiKeys';
import { createLogger, createPveflowMetrics, requestCountsFromVisibility, TextRegistry } from '../observability';
import { createTracing, tracingSettingsFrom } from '../observability/tracing';

/**
 * The API alone (`npm run api`), for a deployment with its own Temporal cluster and workers (docker-compose):
 * no dev server, no simulators, no worker. It refuses to start without API keys: an open API would let anyone
 * approve VMs.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  if (!config.TEMPORAL_ADDRESS) throw new ConfigError('TEMPORAL_ADDRESS is required for the API alone (host:port of the Temporal frontend)');
  const api = loadApiSettings(config);
  if (!api.keys) throw new ConfigError('no API keys: set API_KEYS_FILE (or API_KEYS); the API never runs open');
  const temporal = temporalSettings(config);
  // One JSON line per event, redacted.
  const logger = createLogger({ name: 'api', level: config.LOG_LEVEL });
  const connection = await Connection.connect({ address: temporal.address });
  const tracingSettings = tracingSettingsFrom(config);
  const tracing = tracingSettings ? createTracing(tracingSettings) : undefined;
  const client = new Client({ connection, namespace: temporal.namespace, ...(tracing ? { interceptors: { workflow: tracing.clientInterceptors } } : {}) });
  const registry = new TextRegistry({ onCollectError: (metric, err) => logger.warn('a metric could not be collected', { metric, error: (err as Error).message }) });
  const metrics = createPveflowMetrics(registry, { countRequests: requestCountsFromVisibility(client) });
  const app = createApp({
    client,
    taskQueue: temporal.taskQueue,
    policy: requestPolicyFromConfig(config),
    apiKeys: new ApiKeyStore(api.keys),
    webhookSecret: api.webhookSecret,
    timings: api.timings,
    metrics: { registry, metrics, token: config.METRICS_TOKEN },
    logger,
  });
  const server = app.listen(config.API_PORT, config.API_HOST, () => {
    logger.info('API listening', { url: `http://${config.API_HOST}:${config.API_PORT}`, temporal: temporal.address, namespace: temporal.namespace, taskQueue: temporal.taskQueue });
  });
  const stop = () => {
    server.close(() => void Promise.allSettled([tracing?.shutdown()]).then(() => connection.close()).then(() => process.exit(0)));
    server.closeAllConnections();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err) => {
  console.error(err instanceof ConfigError ? `[pveflow] ${err.message}` : err);
  process.exit(1);
});
