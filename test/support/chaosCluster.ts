import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { generateApiKey } from '../../src/api/auth/apiKeys';
import { generateCodecKey } from '../../src/temporal/codec';
import { startDevServer, type RunningDevServer } from '../../src/embedded/devServer';
import type { SimulatedWorld } from '../../src/simulators/world';
import { searchAttributeDefinitions } from '../../src/contracts/searchAttributes';
import { freePort } from './ports';
import { supervise } from './supervisor';

/**
 * pveflow as a deployment runs it, for the chaos tests: Temporal's dev server (the project's binary on a SQLite
 * file), the API and the worker, each its own process that the test can SIGKILL. The simulated world stays in the
 * test process: it is the cluster, which does not crash with pveflow.
 */
export interface ChaosCluster {
  apiUrl: string;
  operatorKey: string;
  temporalAddress: string;
  /** PVEFLOW_CODEC_KEYS of every process: what the test's own client needs to read what they wrote. */
  codecKeys: string;
  /** SIGKILL of the worker; the supervisor starts a new one at once. */
  killWorker(): Promise<void>;
  /** SIGKILL of the API; the supervisor starts a new one at once (on the same port). */
  killApi(): Promise<void>;
  /** SIGKILL of the dev server, then a new one on the same SQLite file and port once `downMs` have passed. */
  killTemporal(downMs?: number): Promise<void>;
  /** How often each process was started, for the test's own report. */
  starts(): Record<'worker' | 'api' | 'temporal', number>;
  /** The last lines of each process's log: what a failing assertion prints to be diagnosable. */
  logTails(lines?: number): string;
  stop(): Promise<void>;
}

export async function startChaosCluster(opts: {
  dir: string;
  world: SimulatedWorld;
  taskQueue: string;
  /** More API keys besides the operator's (API_KEYS entries, key in clear). */ keys?: object[];
}): Promise<ChaosCluster> {
  const logs = join(opts.dir, 'logs');
  mkdirSync(logs, { recursive: true });
  const [temporalPort, uiPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const dbFile = join(opts.dir, 'temporal.db');
  const operatorKey = generateApiKey();
  // Encrypted as a deployment is: the API and the worker must read each other's payloads through the same keys.
  const codec = generateCodecKey();
  const codecKeys = `${codec.id}:${codec.key.toString('base64')}`;
  let temporalStarts = 0;

  const startTemporal = async () => {
    temporalStarts++;
    return startDevServer({
      ip: '127.0.0.1',
      port: temporalPort,
      uiPort,
      dbFile,
      namespace: 'default',
      searchAttributes: searchAttributeDefinitions,
      logFile: join(logs, 'temporal.log'),
    });
  };
  let temporal: RunningDevServer = await startTemporal();
  if (!temporal.kill) throw new Error("the chaos test needs the project's own Temporal binary (npm install puts it in .tools/bin)");
  const temporalAddress = temporal.address;

  const common = {
    PATH: process.env.PATH,
    TEMPORAL_ADDRESS: temporalAddress,
    TEMPORAL_TASK_QUEUE: opts.taskQueue,
    PVEFLOW_CODEC_KEYS: codecKeys,
    // Shared by the API and the worker, as a deployment's volume is: the worker seals, the API opens.
    CREDENTIAL_KEYS_DIR: join(opts.dir, 'credential-keys'),
    // A dead Temporal is answered 504 sooner: the client retries anyway.
    API_TEMPORAL_TIMEOUT_MS: '5000',
  };
  const worker = supervise(
    'src/worker.ts',
    {
      ...common,
      ...opts.world.env,
      SYNC_INTERVAL_S: '3600',
      // The start-up checks read the cluster and NetBird on every restart; what is tested here is the builds.
      PVEFLOW_DOCTOR: 'off',
    },
    join(logs, 'worker.log'),
  );
  const api = supervise(
    'src/api/main.ts',
    {
      ...common,
      API_HOST: '127.0.0.1',
      API_PORT: String(apiPort),
      API_KEYS: JSON.stringify({ keys: [{ id: 'chaos', role: 'operator', key: operatorKey }, ...(opts.keys ?? [])] }),
    },
    join(logs, 'api.log'),
  );

  return {
    apiUrl: `http://127.0.0.1:${apiPort}`,
    operatorKey,
    temporalAddress,
    codecKeys,
    killWorker: () => worker.killAndRestart(),
    killApi: () => api.killAndRestart(),
    async killTemporal(downMs = 2_000) {
      await temporal.kill!();
      await sleep(downMs);
      temporal = await startTemporal();
    },
    starts: () => ({ worker: worker.starts(), api: api.starts(), temporal: temporalStarts }),
    logTails(lines = 15) {
      return ['temporal', 'api', 'worker']
        .map((n) => {
          let text = '';
          try {
            text = readFileSync(join(logs, `${n}.log`), 'utf8');
          } catch {
            /* not written yet */
          }
          return `--- ${n}.log (last ${lines} lines)\n${text
            .split('\n')
            .slice(-lines - 1)
            .join('\n')}`;
        })
        .join('\n');
    },
    async stop() {
      // Nothing of theirs needs a clean shutdown: everything durable is in Temporal.
      await Promise.allSettled([worker.stop(), api.stop()]);
      await temporal.stop();
    },
  };
}
