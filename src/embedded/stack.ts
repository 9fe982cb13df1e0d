import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Client } from '@temporalio/client';
import type { Worker, WorkflowBundle } from '@temporalio/worker';
import { loadApiSettings } from '../api/http/apiConfig';
import { InFlightCalls } from '../api/http/inFlightCalls';
import { serveApi } from '../api/http/serve';
import { ApiKeyStore } from '../api/auth/apiKeys';
import { DeploymentKeys } from '../api/auth/apiKeysIssued';
import { ensureEmbeddedApiKeys } from '../api/auth/embeddedKeys';
import { signInFrom } from '../api/auth/signIn';
import { credentialKeysDir, loadConfig, requestPolicyFromConfig, type Config } from '../config';
import { CredentialKeys } from '../credentials/credentialKeys';
import { startSimulatedWorld, type SimulatedWorld, type WorldOptions } from '../simulators/world';
import { searchAttributeDefinitions } from '../contracts/searchAttributes';
import { closeActivityDeps, createActivityDeps, createWorker } from '../worker';
import { ensureSyncSchedule } from '../temporal/syncSchedule';
import { connectToTemporal, createTemporalClient, temporalAccessFrom } from '../temporal/access';
import { connectWorkerToTemporal } from '../temporal/workerConnection';
import { ensureKeyFile } from '../temporal/codec';
import { startDevServer, type RunningDevServer } from './devServer';
import { freePort } from '../net/freePort';
import { GATEWAY_CODEC_ENDPOINT, serveTemporalUiGateway } from '../api/temporalUi/gateway';
import { OPERATOR_SESSION_KEY_PURPOSE, OperatorSessions } from '../api/temporalUi/operatorSessions';
import { PAGE_TOKEN_KEY_PURPOSE } from '../api/reads/requestList';
import { simulatorTimings } from './simulatorTimings';
import { createMetricsRegistry, createPveflowMetrics, requestCountsFromVisibility, upstreamCallRecorder } from '../observability';
import { startMetricsServer } from '../observability/metricsServer';
import { installSdkRuntime } from '../observability/sdkMetrics';
import { createTracing, tracingSettingsFrom } from '../observability/tracing';
import { requestChoicesFromConfig } from '../requestChoices';

export interface EmbeddedStackOptions {
  env?: NodeJS.ProcessEnv;
  /** Tests pass a bundle built once per file. */
  workflowBundle?: WorkflowBundle;
  /** Forget the simulated world kept under DATA_DIR/sim and start an empty one (`npm start -- --reset-sim`). */
  resetSim?: boolean;
  /** The process installed the SDK's runtime itself (`npm start`: its logger, its signals) with these metrics, if any. */
  sdkRuntime?: { metrics?: () => Promise<string> };
  /**
   * The simulated Proxmox boots real guests (see the PVE simulator's README): the image, and the services a guest
   * reaches at fixed addresses of its own network (a real NetBird server, a package repository).
   */
  realGuests?: WorldOptions['realGuests'];
}

export interface EmbeddedStack {
  config: Config;
  apiUrl: string;
  temporal: { address: string; uiUrl?: string; namespace: string; taskQueue: string };
  /** The simulated Proxmox, SFTP and NetBird, when no real endpoints were configured. */
  world?: SimulatedWorld;
  client: Client;
  /** Prometheus metrics of the API and the worker (one process, one registry); the worker's own port when configured. */
  metricsUrls: string[];
  stop(): Promise<void>;
}

/**
 * The whole system on one machine: Temporal's dev server (unless TEMPORAL_ADDRESS points at a cluster), the
 * simulated Proxmox cluster, SFTP endpoints and NetBird (unless real endpoints are configured), a worker and the API.
 * The simulators are configured exactly as a real cluster would be, through the same settings.
 */
export async function startEmbeddedStack(opts: EmbeddedStackOptions = {}): Promise<EmbeddedStack> {
  const env = opts.env ?? process.env;
  const initial = loadConfig(env);
  const apiSettings = loadApiSettings(initial); // a bad key file stops us before anything is started
  const signIn = signInFrom(initial); // so does a half-configured sign-in
  const dataDir = resolve(initial.DATA_DIR);
  // The operator's alone: Temporal's database, the generated keys and the simulators' state live here.
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  // Payloads are encrypted from the first start: a key file is generated under the data directory when none is given,
  // and from then on it is configuration like any other, so every client and worker below reads it the same way.
  const codecEnv = initial.PVEFLOW_CODEC_KEYS || initial.PVEFLOW_CODEC_KEY_FILE ? {} : { PVEFLOW_CODEC_KEY_FILE: ensureKeyFile(dataDir).path };
  const stops: Array<() => Promise<void>> = [];
  const stopAll = async () => {
    for (const stop of stops.splice(0).reverse()) await stop().catch((err) => console.error('[pveflow] while stopping:', err));
  };

  try {
    let dev: RunningDevServer | undefined;
    if (!initial.TEMPORAL_ADDRESS) {
      dev = await startDevServer({
        ip: '127.0.0.1',
        port: initial.TEMPORAL_PORT,
        // The UI itself on a loopback port of its own: operators reach it through the gateway, on TEMPORAL_UI_PORT.
        uiPort: await freePort(),
        dbFile: join(dataDir, 'temporal.db'),
        namespace: initial.TEMPORAL_NAMESPACE,
        searchAttributes: searchAttributeDefinitions,
        logFile: join(dataDir, 'temporal.log'),
        // The UI asks its own origin (the gateway) to decrypt what it shows.
        codecEndpoint: GATEWAY_CODEC_ENDPOINT,
      });
      stops.push(dev.stop);
    }
    const address = initial.TEMPORAL_ADDRESS ?? dev!.address;

    let world: SimulatedWorld | undefined;
    let worldEnv: Partial<Record<string, string>> = {};
    if (!initial.PVE_ENDPOINT || !initial.NETBIRD_API_URL) {
      world = await startSimulatedWorld({
        dir: join(dataDir, 'sim'),
        pvePort: initial.SIM_PVE_PORT,
        netbirdPort: initial.SIM_NETBIRD_PORT,
        timing: simulatorTimings[initial.SIM_TIMING],
        persist: { reset: opts.resetSim },
        ...(opts.realGuests ? { realGuests: opts.realGuests } : {}),
        // pveflow's setup keys are then a real NetBird's: a guest joining the simulated one would only be refused.
        simulatedEnrolment: !initial.NETBIRD_API_URL,
      });
      stops.push(world.stop);
      const w = world.env;
      worldEnv = {
        ...(initial.PVE_ENDPOINT
          ? {}
          : pick(w, ['PVE_ENDPOINT', 'PVE_TOKEN_ID', 'PVE_TOKEN_SECRET', 'PVE_CA_FILE', 'PVE_POOL', 'PVE_TEMPLATE_VMID', 'PVE_SNIPPETS_DIR', 'SSH_USER', 'SSH_PRIVATE_KEY_FILE', 'SSH_NODES', 'SSH_HOST_FINGERPRINTS'])),
        ...(initial.NETBIRD_API_URL ? {} : pick(w, ['NETBIRD_API_URL', 'NETBIRD_TOKEN', 'NETBIRD_CA_FILE'])),
      };
    }
    // The dev server started here listens on loopback only and speaks plaintext: production's rule is for a cluster's frontend.
    const config = loadConfig({ ...env, ...worldEnv, ...codecEnv, TEMPORAL_ADDRESS: address, ...(dev ? { TEMPORAL_ALLOW_PLAINTEXT: 'true' } : {}) });
    const access = temporalAccessFrom(config);
    const codec = access.codec;

    // The SDK's runtime is created with the first connection: its metrics exporter must be installed before.
    let sdkMetrics: (() => Promise<string>) | undefined = opts.sdkRuntime?.metrics;
    if (config.TEMPORAL_SDK_METRICS_ADDRESS && !opts.sdkRuntime) {
      try {
        sdkMetrics = installSdkRuntime({ metricsAddress: config.TEMPORAL_SDK_METRICS_ADDRESS });
      } catch (err) {
        console.warn(`[pveflow] the Temporal SDK's metrics are off: ${(err as Error).message}`);
      }
    }
    const registry = createMetricsRegistry();
    let countRequests: (() => Promise<Record<string, number>>) | undefined;
    const metrics = createPveflowMetrics(registry, {
      countRequests: () => countRequests?.() ?? Promise.resolve({}),
      onCollectError: (metric, err) => console.warn(`[pveflow] metric ${metric}: ${(err as Error).message}`),
    });
    const tracingSettings = tracingSettingsFrom(config);
    const tracing = tracingSettings ? createTracing(tracingSettings) : undefined;
    if (tracing) stops.push(() => tracing.shutdown());

    const workerConnection = await connectWorkerToTemporal(access);
    stops.push(() => workerConnection.close());
    const deps = createActivityDeps(config, { onUpstreamCall: upstreamCallRecorder(metrics) }, access);
    stops.push(() => closeActivityDeps(deps));
    const worker: Worker = await createWorker({
      connection: workerConnection,
      namespace: config.TEMPORAL_NAMESPACE,
      taskQueue: config.TEMPORAL_TASK_QUEUE,
      deps,
      workflowBundle: opts.workflowBundle,
      dataConverter: access.dataConverter,
      metrics,
      tracing,
    });
    const running = worker.run();
    stops.push(async () => {
      // The SDK's own signal handler may have begun the shutdown already; the connection closes only once it is done.
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
    });

    const clientConnection = await connectToTemporal(access);
    stops.push(() => clientConnection.close());
    const client = createTemporalClient(access, { connection: clientConnection, interceptors: tracing?.clientInterceptors });
    // The metrics' count is one more of the API's Temporal calls: the API's stop waits for it too.
    const apiCalls = new InFlightCalls();
    const visibleCounts = requestCountsFromVisibility(client, config.TEMPORAL_TASK_QUEUE);
    countRequests = () => apiCalls.run(visibleCounts);
    await ensureSyncSchedule(client, config.TEMPORAL_TASK_QUEUE, config.SYNC_INTERVAL_S);
    let apiKeys = apiSettings.keys;
    if (!apiKeys) {
      // No key configured: the API is still never open. The first start creates an operator key and shows it once.
      const keysFile = join(dataDir, 'api-keys.json');
      const embedded = ensureEmbeddedApiKeys(keysFile);
      apiKeys = embedded.entries;
      if (embedded.createdKey) {
        console.log(`[pveflow] no API keys configured (API_KEYS_FILE, API_KEYS): created ${keysFile} with an operator key, stored hashed.`);
        console.log(`[pveflow] operator API key (shown only this once): ${embedded.createdKey}`);
      } else {
        console.log(`[pveflow] API keys from ${keysFile}`);
      }
    }
    // The file's keys and those issued at run time (the key registry, read every few seconds).
    const apiKeyStore = new DeploymentKeys(new ApiKeyStore(apiKeys), { client, taskQueue: config.TEMPORAL_TASK_QUEUE });
    await apiKeyStore.start();
    stops.push(() => apiKeyStore.stop());
    // Temporal UI, decrypting for signed-in operators: the dev server's UI, or the cluster's at TEMPORAL_UI_URL.
    const uiUpstream = dev?.uiUrl ?? config.TEMPORAL_UI_URL;
    let uiUrl: string | undefined;
    if (uiUpstream && codec) {
      const gateway = await serveTemporalUiGateway({
        host: config.API_HOST,
        port: config.TEMPORAL_UI_PORT,
        upstream: uiUpstream,
        sessions: new OperatorSessions(apiKeyStore, codec.deriveKey(OPERATOR_SESSION_KEY_PURPOSE)),
        codec: codec.codec,
        namespaces: [config.TEMPORAL_NAMESPACE],
      });
      stops.push(gateway.close);
      uiUrl = gateway.url;
    }
    const uiOrigin = config.PVEFLOW_UI_ORIGIN ?? uiUrl;
    const api = await serveApi(
      {
        client,
        inFlight: apiCalls,
        ...(codec && uiOrigin ? { codec: { codec: codec.codec, allowedOrigin: uiOrigin, namespaces: [config.TEMPORAL_NAMESPACE] } } : {}),
        ...(codec ? { pageTokenKey: codec.deriveKey(PAGE_TOKEN_KEY_PURPOSE) } : {}),
        taskQueue: config.TEMPORAL_TASK_QUEUE,
        policy: requestPolicyFromConfig(config),
        choices: requestChoicesFromConfig(config),
        quotas: config.PVEFLOW_QUOTAS,
        apiKeys: apiKeyStore,
        ...signIn,
        webhookSecret: apiSettings.webhookSecret,
        timings: apiSettings.timings,
        metrics: { registry, metrics, token: config.METRICS_TOKEN, append: sdkMetrics },
        credentialKeys: new CredentialKeys(credentialKeysDir(config)),
      },
      config.API_HOST,
      config.API_PORT,
    );
    // Before the client's connection closes (the stops run in reverse): the API's calls in flight settle first.
    stops.push(api.stop);
    const apiPort = api.port;
    const metricsUrls = [`http://${config.API_HOST}:${apiPort}/metrics`];
    if (config.WORKER_METRICS_PORT !== undefined) {
      const workerMetrics = await startMetricsServer({
        host: config.WORKER_METRICS_HOST,
        port: config.WORKER_METRICS_PORT,
        registry,
        token: config.METRICS_TOKEN,
        append: sdkMetrics,
      });
      stops.push(workerMetrics.close);
      metricsUrls.push(workerMetrics.url);
    }

    return {
      config,
      apiUrl: `http://${config.API_HOST}:${apiPort}`,
      temporal: { address, uiUrl, namespace: config.TEMPORAL_NAMESPACE, taskQueue: config.TEMPORAL_TASK_QUEUE },
      world,
      client,
      metricsUrls,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

function pick<T extends object, K extends keyof T>(o: T, keys: K[]): Pick<T, K> {
  return Object.fromEntries(keys.map((k) => [k, o[k]])) as Pick<T, K>;
}
