import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { parse } from 'yaml';
import { generateApiKey, hashApiKey } from '../src/api/auth/apiKeys';
import { NetbirdClient } from '../src/clients/netbird';
import { PveClient } from '../src/clients/pve';
import { loadConfig } from '../src/config';
import { deviceNames } from '../src/domain/deviceNames';
import { connectToTemporal, createTemporalClient, temporalAccessFrom } from '../src/temporal/access';
import { ensureKeyFile } from '../src/temporal/codec';
import { browserMissing, launchChromium } from './support/browser';
import { chaosClient, type ChaosClient } from './support/chaosClient';
import { clearPayloadsOfTaskQueue } from './support/historyPayloads';
import { dexMissing, setCookie, startOidcProvider, testUsers, walkToCallback, type OidcProvider } from './support/oidcProvider';
import { freePort } from './support/ports';
import { validRequestBody } from './support/requests';
import { supervise, type Supervised } from './support/supervisor';
import { composeEnvironment, startTemporalCluster, temporalClusterUnavailable, type RunningTemporalCluster, type TemporalUi } from './support/temporalCluster';
import { readWorkflowInTemporalUi } from './support/temporalUiCheck';
import { waitFor } from './support/waitFor';
import { SECOND_POOL, type WorldFile } from './support/worldProcess';
import { syncScheduleId } from '../src/contracts/workflowIds';

/**
 * The production topology, run for real (`npm run test:topology`): Temporal's server built from its Go module on
 * PostgreSQL with SQL visibility, its schema, namespace and search attributes set up by the scripts docker-compose.yml
 * runs (deploy/temporal), the simulated world as its own process, and pveflow as docker-compose.yml runs it — the API
 * and two workers, each its own process, with the environment compose gives them and codec keys on. Temporal's frontend
 * requires a client certificate of the test's own CA (compose's mTLS): every process presents one. While 20 requests
 * (one of them a class of 5) build, a worker is SIGKILLed, the Temporal server is SIGKILLed and restarted and
 * PostgreSQL is restarted; then half of them are completed. A second pveflow instance (its own pool, VMID range and
 * task queue) shares the namespace throughout: neither touches the other's requests.
 */
const root = resolve(__dirname, '..');
const unavailable = temporalClusterUnavailable();

const ORG = 'Acme Corp';
const SINGLES = 15;
const CLASS_SIZE = 5;
const B_REQUESTS = 3;

interface Instance {
  name: string;
  taskQueue: string;
  apiUrl: string;
  uiUrl: string;
  api: Supervised;
  workers: Supervised[];
  client: ChaosClient;
}

describe('the production topology on a real Temporal server and PostgreSQL', { skip: unavailable }, () => {
  let dir: string;
  let cluster: RunningTemporalCluster;
  let ui: TemporalUi;
  let worldProcess: ChildProcess;
  let world: WorldFile;
  let a: Instance;
  let b: Instance;
  /** Instance a signs people in through a real provider (Dex), with API keys alongside for automation. */
  let provider: OidcProvider | undefined;
  const operatorKey = generateApiKey();
  const metricsToken = `metrics-${generateApiKey()}`;
  const compose = parse(readFileSync(join(root, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, { environment?: Record<string, string> }> };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pveflow-topology-'));
    cluster = await startTemporalCluster({ namespace: 'default', asDeployed: true });

    mkdirSync(join(dir, 'world'));
    worldProcess = spawn(process.execPath, ['--import', 'tsx', 'test/support/worldProcess.ts', join(dir, 'world')], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
    world = await waitFor(
      'the simulated world to serve',
      async () => (existsSync(join(dir, 'world', 'world.json')) ? (JSON.parse(readFileSync(join(dir, 'world', 'world.json'), 'utf8')) as WorldFile) : undefined),
      60_000,
    );

    // The secrets compose mounts under /run/secrets, made the way docs/operations.md tells an operator to.
    const secrets = join(dir, 'secrets');
    mkdirSync(secrets, { mode: 0o700 });
    const codecKeyFile = ensureKeyFile(secrets).path;
    const apiKeysFile = join(secrets, 'api-keys.json');
    writeFileSync(apiKeysFile, JSON.stringify({ keys: [{ id: 'ops', role: 'operator', sha256: hashApiKey(operatorKey) }] }), { mode: 0o600 });

    // Temporal UI with compose's variables (the relative codec endpoint among them); only its address and port differ.
    const tls = cluster.tls!;
    assert.ok(tls, "compose's Temporal requires client certificates: the cluster runs with the test's own CA");
    ui = await cluster.startUi({
      env: {
        ...composeEnvironment('temporal-ui'),
        TEMPORAL_ADDRESS: cluster.address,
        TEMPORAL_UI_PORT: String(await freePort()),
        TEMPORAL_TLS_CA: tls.caFile,
        TEMPORAL_TLS_CERT: tls.clientCertFile,
        TEMPORAL_TLS_KEY: tls.clientKeyFile,
      },
    });
    const start = async (name: string, overrides: Record<string, string>, workers: number, apiPort?: number): Promise<Instance> => {
      apiPort ??= await freePort();
      const gatewayPort = await freePort();
      // What compose sets, with the values that differ outside containers: the same variable names, nothing more.
      const here: Record<string, string> = {
        TEMPORAL_ADDRESS: cluster.address,
        ...cluster.clientEnv,
        PVE_CA_FILE: world.env.PVE_CA_FILE!,
        SSH_PRIVATE_KEY_FILE: world.env.SSH_PRIVATE_KEY_FILE!,
        PVEFLOW_CODEC_KEY_FILE: codecKeyFile,
        CREDENTIAL_KEYS_DIR: join(dir, `credential-keys-${name}`),
        API_HOST: '127.0.0.1',
        API_PORT: String(apiPort),
        API_KEYS_FILE: apiKeysFile,
        TEMPORAL_UI_URL: ui.url,
        TEMPORAL_UI_PORT: String(gatewayPort),
      };
      for (const key of Object.keys(here)) assert.ok(key in compose.services.api!.environment! || key in compose.services.worker!.environment!, `${key} is a variable compose sets`);
      const composeEnv = (service: string) => {
        const env = compose.services[service]!.environment!;
        return Object.fromEntries(Object.keys(env).map((k) => [k, here[k] ?? env[k]!]));
      };
      // pveflow.env: the cluster's endpoints and secrets, here the simulated world's; then what sets this instance apart.
      const pveflowEnv = { ...world.env, METRICS_TOKEN: metricsToken };
      const base = { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp' };
      const logs = join(dir, `logs-${name}`);
      mkdirSync(logs);
      const api = supervise('src/api/main.ts', { ...base, ...pveflowEnv, ...composeEnv('api'), ...overrides }, join(logs, 'api.log'));
      const ws = Array.from({ length: workers }, (_, i) => supervise('src/worker.ts', { ...base, ...pveflowEnv, ...composeEnv('worker'), ...overrides }, join(logs, `worker-${i + 1}.log`)));
      const apiUrl = `http://127.0.0.1:${apiPort}`;
      const taskQueue = overrides.TEMPORAL_TASK_QUEUE ?? compose.services.worker!.environment!.TEMPORAL_TASK_QUEUE!;
      return { name, taskQueue, apiUrl, uiUrl: `http://127.0.0.1:${gatewayPort}`, api, workers: ws, client: chaosClient(apiUrl, operatorKey) };
    };
    const aPort = await freePort();
    // Sign-in on: OIDC_* belong to pveflow.env, as operations.md §8 says; the sessions in a directory of the deployment.
    const signIn: Record<string, string> = {};
    if (!dexMissing()) {
      provider = await startOidcProvider({ apiUrl: `http://127.0.0.1:${aPort}` });
      Object.assign(signIn, provider.env, { SESSION_DIR: join(dir, 'sessions') });
    }
    a = await start('a', { PVE_VMID_RANGE: '10000-19999', ...signIn }, 2, aPort);
    b = await start('b', { TEMPORAL_TASK_QUEUE: 'pveflow-b', PVE_POOL: SECOND_POOL.poolid, PVE_TEMPLATE_VMID: String(SECOND_POOL.templateVmid), PVE_VMID_RANGE: '20000-29999' }, 1);
    for (const i of [a, b]) {
      await waitFor(`instance ${i.name}'s API`, async () => ((await i.client.call('GET', '/readyz')).status === 200 ? true : undefined), 120_000, 500);
      await waitFor(`instance ${i.name}'s workers to poll`, async () => (i.workers.every((_, n) => /worker polling/.test(logOf(i, `worker-${n + 1}`))) ? true : undefined), 180_000, 500);
      for (const p of ['api', ...i.workers.map((_, n) => `worker-${n + 1}`)]) assert.match(logOf(i, p), /"temporalSecurity":"mTLS"/, `${i.name}/${p} reaches Temporal over mTLS`);
    }
  });

  after(async () => {
    for (const i of [a, b]) if (i) await Promise.allSettled([i.api.stop('SIGTERM'), ...i.workers.map((w) => w.stop('SIGTERM'))]);
    await ui?.stop();
    await provider?.stop();
    if (worldProcess && worldProcess.exitCode === null) {
      const exited = new Promise((ok) => worldProcess.once('exit', ok));
      worldProcess.kill('SIGTERM');
      await exited;
    }
    await cluster?.stop();
    if (dir && !process.env.PVEFLOW_KEEP_TOPOLOGY) rmSync(dir, { recursive: true, force: true });
  });

  const logOf = (i: Instance, process: string) => {
    try {
      return readFileSync(join(dir, `logs-${i.name}`, `${process}.log`), 'utf8');
    } catch {
      return '';
    }
  };
  const tails = () =>
    [a, b].flatMap((i) => ['api', ...i.workers.map((_, n) => `worker-${n + 1}`)].map((p) => `--- ${i.name}/${p}\n${logOf(i, p).split('\n').slice(-15).join('\n')}`)).join('\n') +
    `\n--- temporal\n${cluster.logs().split('\n').slice(-15).join('\n')}`;

  test('the frontend refuses a client without a certificate of the deployment', async () => {
    const trust = { serverRootCACertificate: readFileSync(cluster.tls!.caFile), serverNameOverride: cluster.tls!.serverName };
    await assert.rejects(
      (async () => {
        const c = await Connection.connect({ address: cluster.address, tls: trust, connectTimeout: 5_000 });
        try {
          await c.withDeadline(Date.now() + 5_000, () => new Client({ connection: c }).workflow.count());
        } finally {
          await c.close();
        }
      })(),
      'TLS without a client certificate',
    );
  });

  test("with sign-in on: a person signs in through the provider and the API takes their session and the provider's token", { skip: dexMissing() }, async () => {
    const { callbackUrl, loginCookie } = await walkToCallback(a.apiUrl, testUsers.acmeAdmin);
    const callback = await fetch(callbackUrl, { redirect: 'manual', headers: { cookie: `pveflow_login=${loginCookie}` } });
    assert.equal(callback.status, 303, await callback.text());
    const cookie = setCookie(callback, 'pveflow_session');
    assert.ok(cookie);
    const me = await fetch(`${a.apiUrl}/api/session`, { headers: { cookie: `pveflow_session=${cookie}` } });
    assert.equal(me.status, 200);
    assert.deepEqual(Object.keys((await me.json()) as object).sort(), ['csrf_token', 'email', 'id', 'org', 'role']);
    const { access_token } = await provider!.passwordTokens(testUsers.acmeAdmin);
    const listed = await fetch(`${a.apiUrl}/api/device_requests`, { headers: { authorization: `Bearer ${access_token}` } });
    assert.equal(listed.status, 200, "an admin of Acme Corp lists its requests with the provider's token");
    assert.equal((await a.client.call('GET', '/api/session')).status, 200, 'the operator key still works beside it');
  });

  test('twenty requests build through a worker kill, a Temporal crash and a PostgreSQL restart; half complete; nothing leaks, nothing in clear, two instances apart', async (t) => {
    const base = Date.now() + 30 * 24 * 3600_000;
    const body = (name: string, i: number) =>
      validRequestBody({
        name,
        client: ORG,
        consultants: ['alice@consultancy.example'],
        cores: 1,
        memory_mib: 1024,
        period: { start: new Date(Date.now() - 60_000).toISOString(), end: new Date(base + i * 60_000).toISOString() },
      });

    // Instance A: 15 requests and a class of 5; instance B: 3 requests. All approved.
    const singles = await Promise.all(Array.from({ length: SINGLES }, (_, i) => a.client.submitOnce(body('topo', i), `topology-a-${base}-${i}`)));
    const created = await a.client.call('POST', '/api/classes', { ...body('lab', SINGLES), count: CLASS_SIZE }, { 'Idempotency-Key': `topology-class-${base}` });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const classSerials: string[] = created.body.requests.map((r: { serial: string }) => r.serial);
    assert.equal(classSerials.length, CLASS_SIZE);
    const bSerials = await Promise.all(Array.from({ length: B_REQUESTS }, (_, i) => b.client.submitOnce(body('other', 100 + i), `topology-b-${base}-${i}`)));
    const aSerials = [...singles, ...classSerials];

    const approvals = Promise.all([
      ...singles.map((s) => a.client.actOnce(s, 'approve', (status) => status !== 'Pending')),
      (async () => {
        const r = await a.client.call('POST', `/api/classes/${created.body.class}/approve`, {});
        assert.equal(r.status, 200, JSON.stringify(r.body));
      })(),
      ...bSerials.map((s) => b.client.actOnce(s, 'approve', (status) => status !== 'Pending')),
    ]);

    // While they build: a worker SIGKILLed, the Temporal server SIGKILLed and restarted, PostgreSQL restarted. Where
    // each landed is reported in the cluster's terms (VMs made, VMs running), to show it hit builds in flight.
    const observer = new PveClient({ endpoint: world.env.PVE_ENDPOINT!, tokenId: world.rootToken.id, tokenSecret: world.rootToken.secret, ca: readFileSync(world.env.PVE_CA_FILE!), timeoutMs: 5_000 });
    const moments: string[] = [];
    const mark = async (what: string) => {
      const vms = (await observer.clusterResources('vm').catch(() => [])).filter((r) => r.type === 'qemu' && !r.template);
      moments.push(`${what}: ${vms.length} VMs, ${vms.filter((v) => v.status === 'running').length} running`);
    };
    const chaos = (async () => {
      await sleep(2_000);
      await mark('worker SIGKILL');
      await a.workers[0]!.killAndRestart();
      await sleep(3_000);
      await mark('Temporal SIGKILL');
      await cluster.killServer();
      await sleep(2_000);
      await cluster.restartServer();
      await sleep(4_000);
      await mark('PostgreSQL restart');
      await cluster.restartPostgres();
    })();
    await approvals;
    await chaos;

    const fulfilled = async (i: Instance, serials: string[]) =>
      waitFor(
        `${serials.length} requests of instance ${i.name} to be Fulfilled`,
        async () => {
          const all = await Promise.all(serials.map((s) => i.client.record(s)));
          const failed = all.filter((r) => !['Approved', 'Imaging', 'Provisioning', 'Configuring', 'Fulfilled'].includes(r.status));
          if (failed.length) throw new Error(`not fulfilled: ${failed.map((r) => `${r.serial} ${r.status}: ${r.build?.error ?? ''}`).join('; ')}\n${tails()}`);
          return all.every((r) => r.status === 'Fulfilled') ? all : undefined;
        },
        600_000,
        1_000,
      ).catch((err) => {
        throw new Error(`${(err as Error).message}\n${tails()}`);
      });
    const [aRecords, bRecords] = await Promise.all([fulfilled(a, aSerials), fulfilled(b, bSerials)]);
    await observer.close();
    t.diagnostic(`chaos landed at: ${moments.join('; ')} (of ${aSerials.length + bSerials.length} builds)`);

    // Half of A's requests are completed.
    const toComplete = aSerials.filter((_, i) => i % 2 === 0);
    const kept = aSerials.filter((_, i) => i % 2 === 1);
    await Promise.all(toComplete.map((s) => a.client.actOnce(s, 'complete', (status) => ['Completing', 'Completed'].includes(status))));
    await waitFor(
      'the completed requests to be Completed',
      async () => {
        const all = await Promise.all(toComplete.map((s) => a.client.record(s)));
        return all.every((r) => r.status === 'Completed') ? all : undefined;
      },
      300_000,
      1_000,
    );

    // Each instance's sync runs (its own Schedule) and leaves the other's requests alone.
    const access = temporalAccessFrom(loadConfig({ TEMPORAL_ADDRESS: cluster.address, ...cluster.clientEnv, PVEFLOW_CODEC_KEY_FILE: join(dir, 'secrets', 'codec-keys.json') }));
    const connection = await connectToTemporal(access);
    try {
      const temporal = createTemporalClient(access, { connection });
      for (const i of [a, b]) await temporal.schedule.getHandle(syncScheduleId(i.taskQueue)).trigger();
      await waitFor(
        'a completed sync of each instance',
        async () => {
          let done = 0;
          for (const i of [a, b])
            for await (const _ of temporal.workflow.list({ query: `WorkflowType = 'clusterSync' AND ExecutionStatus = 'Completed' AND TaskQueue = '${i.taskQueue}'` })) {
              done++;
              break;
            }
          return done === 2 || undefined;
        },
        120_000,
        1_000,
      );
      for (const [i, serials] of [
        [a, kept],
        [b, bSerials],
      ] as const) {
        const all = await Promise.all(serials.map((s) => i.client.record(s)));
        assert.deepEqual(
          all.map((r) => r.status),
          serials.map(() => 'Fulfilled'),
          `instance ${i.name}'s requests stay Fulfilled after both syncs`,
        );
      }

      // Lists: each instance exactly its own.
      assert.deepEqual((await a.client.listAll(ORG)).map((r) => r.serial).sort(), [...aSerials].sort(), "A lists its own 20, none of B's");
      assert.deepEqual((await b.client.listAll(ORG)).map((r) => r.serial).sort(), [...bSerials].sort(), "B lists its own, none of A's");
      assert.equal((await b.client.call('GET', `/api/device_requests/${aSerials[0]}`)).status, 404, "B cannot read A's request");

      // Nothing of ours in clear, in any history of either instance.
      const raw = new Client({ connection });
      for (const i of [a, b]) {
        const { workflows, findings } = await clearPayloadsOfTaskQueue(raw, i.taskQueue);
        assert.ok(workflows > 0);
        assert.deepEqual(findings, [], `instance ${i.name}: every payload is encrypted`);
      }
    } finally {
      await connection.close();
    }

    // The cluster, read as a client would: exactly one VM per fulfilled request, in its instance's pool; none for the completed.
    const pve = new PveClient({ endpoint: world.env.PVE_ENDPOINT!, tokenId: world.rootToken.id, tokenSecret: world.rootToken.secret, ca: readFileSync(world.env.PVE_CA_FILE!), timeoutMs: 15_000 });
    const netbird = new NetbirdClient({ baseUrl: world.env.NETBIRD_API_URL!, token: world.env.NETBIRD_TOKEN!, timeoutMs: 15_000, ca: readFileSync(world.env.NETBIRD_CA_FILE!) });
    try {
      const vms = (await pve.clusterResources('vm')).filter((r) => r.type === 'qemu' && !r.template);
      const vmidsOf = (records: Array<{ serial: string; device: { vmid: number } }>, serials: readonly string[]) =>
        records
          .filter((r) => serials.includes(r.serial))
          .map((r) => r.device.vmid)
          .sort();
      assert.deepEqual(
        vms
          .filter((v) => v.pool === 'pveflow')
          .map((v) => v.vmid)
          .sort(),
        vmidsOf(aRecords, kept),
        'pool pveflow: one VM per kept request of A, and nothing else',
      );
      assert.deepEqual(
        vms
          .filter((v) => v.pool === SECOND_POOL.poolid)
          .map((v) => v.vmid)
          .sort(),
        vmidsOf(bRecords, bSerials),
        "pool pveflow-b: B's VMs",
      );
      assert.ok(
        vms.every((v) => (v.pool === 'pveflow' ? v.vmid! < 20_000 : v.vmid! >= 20_000)),
        'each instance kept to its VMID range',
      );

      const [peers, groups, policies, setupKeys] = await Promise.all([netbird.listPeers(), netbird.listGroups(), netbird.listPolicies(), netbird.listSetupKeys()]);
      const namesOf = (serial: string, records: Array<{ serial: string; request: { name: string } }>) => deviceNames(serial, records.find((r) => r.serial === serial)!.request.name);
      for (const serial of toComplete) {
        const n = namesOf(serial, aRecords);
        assert.ok(!peers.some((p) => p.name === n.hostname), `${serial}: no peer left`);
        assert.ok(!groups.some((g) => g.name === n.deviceGroup), `${serial}: no device group left`);
        assert.ok(!policies.some((p) => p.name === n.policy), `${serial}: no policy left`);
        assert.ok(!setupKeys.some((k) => k.name === n.setupKey && !k.revoked), `${serial}: no usable setup key left`);
      }
      for (const [serial, records] of [...kept.map((s) => [s, aRecords] as const), ...bSerials.map((s) => [s, bRecords] as const)]) {
        const n = namesOf(serial, records);
        assert.equal(peers.filter((p) => p.name === n.hostname).length, 1, `${serial}: one peer`);
        assert.equal(groups.filter((g) => g.name === n.deviceGroup).length, 1, `${serial}: one device group`);
        assert.equal(policies.filter((p) => p.name === n.policy).length, 1, `${serial}: one policy`);
      }
    } finally {
      await Promise.allSettled([pve.close(), netbird.close()]);
    }

    // Temporal UI on this topology: an operator reads a request decrypted through the gateway.
    if (!browserMissing()) {
      const browser = await launchChromium();
      try {
        await readWorkflowInTemporalUi(browser, { uiUrl: a.uiUrl, operatorKey, workflowId: `vm-request-${kept[0]}`, expectText: 'topo' });
      } finally {
        await browser.close();
      }
    }
    const restarts = a.workers[0]!.starts();
    assert.ok(restarts >= 2, `the killed worker was replaced (${restarts} starts)`);
  });
});
