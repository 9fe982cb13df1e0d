import { readFileSync } from 'node:fs';
import type { DataConverter } from '@temporalio/common';
import { NativeConnection, Worker, type WorkflowBundle } from '@temporalio/worker';
import { activityBuildStages, createActivities } from './activities';
import type { ActivityDeps } from './activities/deps';
import { StandingGroups } from './activities/netbird/standingGroups';
import { UserGroupWriter } from './activities/netbird/userGroups';
import { NetbirdClient } from './clients/netbird';
import { PveClient } from './clients/pve';
import { addressPoolFromConfig, credentialKeysDir, loadConfig, ConfigError, type Config } from './config';
import { CredentialKeys } from './credentials/credentialKeys';
import { formatFindings, runDoctor } from './doctor/runDoctor';
import { doctorCatalogueSettings } from './doctor/catalogueSettings';
import { createTemporalClient, temporalAccessFrom, temporalSecrets, type TemporalAccess } from './temporal/access';
import { connectWorkerToTemporal } from './temporal/workerConnection';
import { ensureSyncSchedule } from './temporal/syncSchedule';
import { ensureCoordinators } from './temporal/coordinators';
import { createLogger, createMetricsRegistry, createPveflowMetrics, upstreamCallRecorder, type PveflowMetrics, type UpstreamCallHook } from './observability';
import { startMetricsServer } from './observability/metricsServer';
import { installSdkRuntime } from './observability/sdkMetrics';
import { createTracing, tracingSettingsFrom, type Tracing } from './observability/tracing';
import { workerObservabilityOptions } from './observability/workerObservability';
import { pveflowVersion } from './version';

/**
 * The composition root: the only place that builds clients from configuration and hands them to the activities.
 * `createWorker` is exported so that tests build a worker with their own dependencies.
 */
export interface CreateWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  deps: ActivityDeps;
  /** A pre-built bundle (tests build it once per file); otherwise the workflows are bundled at start-up. */
  workflowBundle?: WorkflowBundle;
  /** Encrypts every payload the worker writes to Temporal (and decrypts what it reads): TemporalAccess's converter. */
  dataConverter?: DataConverter;
  /** Build stage durations, build outcomes and sync drift go here (docs/operations.md, "Observability"). */
  metrics?: PveflowMetrics;
  /** OpenTelemetry spans for workflows and activities; the workflow half needs the worker to bundle its workflows. */
  tracing?: Tracing;
}

export async function createWorker({ connection, namespace, taskQueue, deps, workflowBundle, dataConverter, metrics, tracing }: CreateWorkerOptions): Promise<Worker> {
  // The coordinators the builds signal run before the first build can: started here, never by an activity.
  await ensureCoordinators(deps.temporal.client, taskQueue);
  return Worker.create({
    connection,
    namespace,
    taskQueue,
    ...(dataConverter ? { dataConverter } : {}),
    activities: createActivities(deps),
    ...(workflowBundle ? { workflowBundle } : { workflowsPath: require.resolve('./workflows') }),
    ...workerObservabilityOptions({ metrics, tracing, bundling: !workflowBundle, stageOf: activityBuildStages }),
  });
}

/**
 * Real clients for the endpoints in the configuration (the embedded default fills it with its simulators). The
 * activities' own Temporal client shares the worker's converter: both come from the same configuration.
 */
export function createActivityDeps(config: Config, observe: { onUpstreamCall?: UpstreamCallHook } = {}, access: TemporalAccess = temporalAccessFrom(config)): ActivityDeps {
  if (!config.PVE_ENDPOINT || !config.PVE_TOKEN_ID || !config.PVE_TOKEN_SECRET) {
    throw new ConfigError('PVE_ENDPOINT, PVE_TOKEN_ID and PVE_TOKEN_SECRET are required');
  }
  if (!config.NETBIRD_API_URL || !config.NETBIRD_TOKEN) throw new ConfigError('NETBIRD_API_URL and NETBIRD_TOKEN are required');
  if (!config.SSH_PRIVATE_KEY_FILE || !config.SSH_NODES || !config.SSH_HOST_FINGERPRINTS) {
    throw new ConfigError('SSH_PRIVATE_KEY_FILE, SSH_NODES and SSH_HOST_FINGERPRINTS are required (SFTP to the nodes, host keys pinned)');
  }
  const sshNodes = config.SSH_NODES;
  const fingerprints = config.SSH_HOST_FINGERPRINTS;
  const privateKey = readFileSync(config.SSH_PRIVATE_KEY_FILE, 'utf8');
  const netbird = new NetbirdClient({
    baseUrl: config.NETBIRD_API_URL,
    token: config.NETBIRD_TOKEN,
    timeoutMs: config.NETBIRD_TIMEOUT_MS,
    ca: config.NETBIRD_CA_FILE ? readFileSync(config.NETBIRD_CA_FILE) : undefined,
    onCall: observe.onUpstreamCall,
  });
  return {
    // Lazy: connects on first use, so building the dependencies never blocks on Temporal.
    temporal: { client: createTemporalClient(access), taskQueue: access.settings.taskQueue },
    pve: new PveClient({
      endpoint: config.PVE_ENDPOINT,
      tokenId: config.PVE_TOKEN_ID,
      tokenSecret: config.PVE_TOKEN_SECRET,
      ca: config.PVE_CA_FILE ? readFileSync(config.PVE_CA_FILE) : undefined,
      fingerprint: config.PVE_FINGERPRINT,
      insecureSkipVerify: config.PVE_INSECURE_SKIP_VERIFY,
      timeoutMs: config.PVE_TIMEOUT_MS,
      onCall: observe.onUpstreamCall,
    }),
    netbird,
    netbirdGroups: createNetbirdGroups(netbird),
    sftpTarget(node) {
      const address = sshNodes[node];
      const hostKeyFingerprint = fingerprints[node];
      if (!address || !hostKeyFingerprint) {
        throw new ConfigError(`node ${node} has no SSH_NODES address or SSH_HOST_FINGERPRINTS entry: add it to upload snippets there`);
      }
      return { ...address, username: config.SSH_USER, privateKey, hostKeyFingerprint, timeoutMs: config.SSH_TIMEOUT_MS };
    },
    credentialKeys: new CredentialKeys(credentialKeysDir(config)),
    settings: {
      pool: config.PVE_POOL,
      vmidRange: config.PVE_VMID_RANGE,
      templateVmid: config.PVE_TEMPLATE_VMID,
      bridge: config.PVE_BRIDGE,
      vlan: config.PVE_VLAN,
      fullCloneDefault: config.PVE_FULL_CLONE_DEFAULT,
      cloneLimits: { perNode: config.PVE_CLONE_LIMIT_PER_NODE, perStorage: config.PVE_CLONE_LIMIT_PER_STORAGE },
      addressPool: addressPoolFromConfig(config),
      targetStorage: config.PVE_TARGET_STORAGE,
      ha: config.PVE_HA || config.PVE_HA_GROUP ? { group: config.PVE_HA_GROUP } : undefined,
      nodeSelector: config.PVE_NODE_SELECTOR,
      snippetsStorage: config.PVE_SNIPPETS_STORAGE,
      snippetsDir: config.PVE_SNIPPETS_DIR,
      netbirdManagementUrl: config.NETBIRD_MANAGEMENT_URL ?? new URL(config.NETBIRD_API_URL).origin,
      setupKeyTtlSeconds: config.NETBIRD_SETUP_KEY_TTL_S,
      missingConsultant: config.NETBIRD_MISSING_CONSULTANT,
      guestIpWaitSeconds: config.GUEST_IP_WAIT_S,
      peerWaitSeconds: config.NETBIRD_PEER_WAIT_S,
      pollMinMs: 250,
      pollMaxMs: 2_000,
    },
  };
}

/** The NetBird group caches and write queues of one worker process, shared by all its activities. */
export function createNetbirdGroups(netbird: NetbirdClient): ActivityDeps['netbirdGroups'] {
  const userGroups = new UserGroupWriter(netbird);
  return { standingGroups: new StandingGroups(netbird, userGroups), userGroups };
}

/** Closes what createActivityDeps opened (HTTP keep-alive pools, the lazy Temporal connection). */
export async function closeActivityDeps(deps: ActivityDeps): Promise<void> {
  await Promise.allSettled([deps.pve.close(), deps.netbird.close(), deps.temporal.client.connection.close()]);
}

/** `npm run worker`: a worker alone, for a deployment with its own Temporal cluster (docker-compose). */
async function main(): Promise<void> {
  const config = loadConfig();
  const access = temporalAccessFrom(config);
  const temporal = access.settings;
  // One JSON line per event, redacted, the SDK's own lines included.
  const logger = createLogger({ name: 'worker', level: config.LOG_LEVEL, knownSecrets: temporalSecrets(access) });
  // Before the first connection: that is when the SDK's runtime is created.
  const sdkMetrics = installSdkRuntime({ logger, metricsAddress: config.TEMPORAL_SDK_METRICS_ADDRESS });
  const connection = await connectWorkerToTemporal(access);
  const registry = createMetricsRegistry();
  const metrics = createPveflowMetrics(registry);
  const tracingSettings = tracingSettingsFrom(config);
  const tracing = tracingSettings ? createTracing(tracingSettings) : undefined;
  const deps = createActivityDeps(config, { onUpstreamCall: upstreamCallRecorder(metrics) }, access);
  if (config.WORKER_METRICS_PORT !== undefined) {
    const server = await startMetricsServer({ host: config.WORKER_METRICS_HOST, port: config.WORKER_METRICS_PORT, registry, token: config.METRICS_TOKEN, append: sdkMetrics });
    logger.info({ url: server.url }, 'worker metrics served');
  }
  if (config.PVEFLOW_DOCTOR !== 'off') {
    // What the seeds' operators get wrong, said before the first request fails on it.
    const findings = await runDoctor({ ...deps, settings: { ...deps.settings, ...doctorCatalogueSettings(config) }, token: { id: config.PVE_TOKEN_ID!, secret: config.PVE_TOKEN_SECRET! } });
    logger[findings.some((f) => !f.ok) ? 'warn' : 'info'](`start-up checks:\n${formatFindings(findings)}`);
    if (config.PVEFLOW_DOCTOR === 'enforce' && findings.some((f) => !f.ok)) {
      throw new ConfigError('start-up checks failed (PVEFLOW_DOCTOR=enforce): fix the findings above, or set PVEFLOW_DOCTOR=warn');
    }
  }
  const worker = await createWorker({ connection, namespace: temporal.namespace, taskQueue: temporal.taskQueue, deps, dataConverter: access.dataConverter, metrics, tracing });
  logger.info(
    {
      version: pveflowVersion,
      temporal: temporal.address,
      temporalSecurity: access.security,
      namespace: temporal.namespace,
      taskQueue: temporal.taskQueue,
      payloads: access.codec ? `encrypted (${access.codec.source})` : 'in clear',
    },
    'worker polling',
  );
  await ensureSyncSchedule(deps.temporal.client, temporal.taskQueue, config.SYNC_INTERVAL_S);
  await worker.run();
  await tracing?.shutdown();
  await connection.close();
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err instanceof ConfigError ? err.message : err);
    process.exit(1);
  });
}
