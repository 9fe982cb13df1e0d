import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, type Connection } from '@temporalio/client';
import { generateApiKey, hashApiKey } from '../src/api/auth/apiKeys';
import { loadConfig } from '../src/config';
import { connectToTemporal, temporalAccessFrom, type TemporalAccess } from '../src/temporal/access';
import { ensureKeyFile } from '../src/temporal/codec';
import { freePort } from '../test/support/ports';
import { supervise, type Supervised } from '../test/support/supervisor';
import { startTemporalCluster, temporalClusterUnavailable, type RunningTemporalCluster } from '../test/support/temporalCluster';

/**
 * pveflow as docker-compose.yml runs it: a Temporal server built from its Go module on PostgreSQL (fsync on, SQL
 * visibility), the API and two workers as their own processes with payloads encrypted, reaching a simulated world
 * that runs elsewhere (bench/worldProcess.ts). What `bench:topology` and `bench:cost` measure.
 */
export interface TopologyStack {
  cluster: RunningTemporalCluster;
  /** A client of this server without pveflow's codec (the floor's, and for reading histories). */
  raw: Client;
  connection: Connection;
  access: TemporalAccess;
  /** One API call as the operator; throws on a status ≥ 300. */
  api(method: string, path: string, body?: unknown): Promise<any>;
  /** The API's and the workers' processes. */
  pveflowPids(): Array<number | undefined>;
  stop(): Promise<void>;
}

export function topologyUnavailable(): string | undefined {
  return temporalClusterUnavailable();
}

export async function startTopology(dir: string, worldEnv: Record<string, string>): Promise<TopologyStack> {
  const processes: Supervised[] = [];
  const cluster = await startTemporalCluster({ namespace: 'default', asDeployed: true, postgresSettings: { fsync: 'on', synchronous_commit: 'on', full_page_writes: 'on' } });
  try {
    // compose's Temporal requires a client certificate (the harness's own CA): the bench presents it, as pveflow does.
    const access = temporalAccessFrom(loadConfig({ TEMPORAL_ADDRESS: cluster.address, ...cluster.clientEnv }));
    const connection = await connectToTemporal(access);
    const raw = new Client({ connection });
    const secrets = join(dir, 'secrets');
    mkdirSync(secrets, { recursive: true });
    const operatorKey = generateApiKey();
    writeFileSync(join(secrets, 'api-keys.json'), JSON.stringify({ keys: [{ id: 'bench', role: 'operator', sha256: hashApiKey(operatorKey) }] }));
    const apiPort = await freePort();
    const env = {
      PATH: process.env.PATH!,
      HOME: process.env.HOME ?? '/tmp',
      ...worldEnv,
      NODE_ENV: 'production',
      TEMPORAL_ADDRESS: cluster.address,
      ...cluster.clientEnv,
      TEMPORAL_NAMESPACE: 'default',
      TEMPORAL_TASK_QUEUE: 'pveflow',
      PVEFLOW_CODEC_KEY_FILE: ensureKeyFile(secrets).path,
      CREDENTIAL_KEYS_DIR: join(secrets, 'credential-keys'),
      API_KEYS_FILE: join(secrets, 'api-keys.json'),
      API_HOST: '127.0.0.1',
      API_PORT: String(apiPort),
      SYNC_INTERVAL_S: '86400',
      PVEFLOW_DOCTOR: 'off',
      METRICS_TOKEN: `metrics-${generateApiKey()}`,
      // One key drives the whole load: the per-key write budget is for people, not for a bench.
      API_WRITES_PER_MINUTE: '0',
    };
    processes.push(supervise('src/api/main.ts', env, join(dir, 'api.log')));
    for (const i of [1, 2]) processes.push(supervise('src/worker.ts', env, join(dir, `worker-${i}.log`)));
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    const api = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${apiUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${operatorKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(60_000),
      });
      const text = await res.text();
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
      return text ? JSON.parse(text) : undefined;
    };
    for (let i = 0; ; i++) {
      const polling = [1, 2].every((w) => existsSync(join(dir, `worker-${w}.log`)) && /worker polling/.test(readFileSync(join(dir, `worker-${w}.log`), 'utf8')));
      const ready =
        polling &&
        (await fetch(`${apiUrl}/readyz`).then(
          (r) => r.ok,
          () => false,
        ));
      if (ready) break;
      if (i > 600) throw new Error('pveflow did not start: see the logs under ' + dir);
      await sleep(500);
    }
    return {
      cluster,
      raw,
      connection,
      access,
      api,
      pveflowPids: () => processes.map((p) => p.pid()),
      async stop() {
        await Promise.allSettled(processes.map((p) => p.stop('SIGTERM')));
        await connection.close().catch(() => undefined);
        await cluster.stop();
      },
    };
  } catch (err) {
    await Promise.allSettled(processes.map((p) => p.stop('SIGTERM')));
    await cluster.stop();
    throw err;
  }
}
