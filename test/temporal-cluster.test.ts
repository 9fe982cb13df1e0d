import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import { makeTemporalCertificates } from './support/temporalCertificates';
import { readFileSync } from 'node:fs';
import { loadConfig } from '../src/config';
import { RequestStatusKey, SerialKey } from '../src/contracts/searchAttributes';
import { connectToTemporal, temporalAccessFrom } from '../src/temporal/access';
import { connectWorkerToTemporal } from '../src/temporal/workerConnection';
import { proceedSignal, survivesRestarts } from './support/clusterSmokeWorkflows';
import { quietLogger } from './support/quietLogger';
import { startTemporalCluster, temporalClusterUnavailable, type RunningTemporalCluster } from './support/temporalCluster';
import { waitFor } from './support/waitFor';

/**
 * The Temporal cluster the topology test and benches run on (test/support/temporalCluster.ts): a real Temporal server
 * on PostgreSQL with SQL visibility, set up with the operator's commands. Before anything heavier trusts it, it must
 * keep a workflow through a server crash and a database restart, find it by pveflow's search attributes, and serve
 * Temporal UI with the codec endpoint it was given. It runs as production should: TLS with client certificates
 * required, its own CA; pveflow's clients and worker connect with the certificate (src/temporal/access.ts), and a
 * client without one is refused.
 */
const skip = temporalClusterUnavailable();

for (const serverConfig of ['file', 'environment'] as const) {
  describe(`a Temporal cluster on PostgreSQL, without Docker (server configured by ${serverConfig === 'file' ? 'a config file of ours' : "the temporalio/server image's environment variables"})`, { skip }, () => {
    const suffix = randomBytes(4).toString('hex');
    const namespace = `pveflow-smoke-${suffix}`;
    const taskQueue = `cluster-smoke-${suffix}`;
    let cluster: RunningTemporalCluster;
    let connection: Connection;
    let client: Client;
    let workerConnection: NativeConnection;
    let worker: Worker;
    let workerRun: Promise<void>;

    before(async () => {
      cluster = await startTemporalCluster({ namespace, serverConfig, mtls: true });
      // pveflow's own way in: the variables Temporal's CLI reads, through the connection options of every process.
      const access = temporalAccessFrom(loadConfig({ TEMPORAL_ADDRESS: cluster.address, TEMPORAL_NAMESPACE: namespace, ...cluster.clientEnv }));
      assert.equal(access.security, 'mTLS');
      connection = await connectToTemporal(access);
      client = new Client({ connection, namespace });
      workerConnection = await connectWorkerToTemporal(access);
      worker = await Worker.create({
        connection: workerConnection,
        namespace,
        taskQueue,
        workflowBundle: await bundleWorkflowCode({ workflowsPath: require.resolve('./support/clusterSmokeWorkflows'), logger: quietLogger }),
        activities: { echo: async (text: string) => `echo:${text}` },
      });
      workerRun = worker.run();
    });

    after(async () => {
      if (worker) {
        worker.shutdown();
        await workerRun.catch(() => undefined);
      }
      await workerConnection?.close();
      await connection?.close();
      await cluster?.stop();
    });

    /** Workflow ids visibility returns for a query (SQL visibility on PostgreSQL here). */
    async function visible(query: string): Promise<string[]> {
      const ids: string[] = [];
      for await (const execution of client.workflow.list({ query })) ids.push(execution.workflowId);
      return ids;
    }

    test('a workflow completes across a SIGKILL of the server and a restart of PostgreSQL, found by its search attributes', { timeout: 180_000 }, async (t) => {
      t.diagnostic(`cluster ready in ${cluster.timings.readyMs} ms (PostgreSQL in ${cluster.timings.postgresReadyMs} ms) at ${cluster.address}`);
      const serial = `SMOKE-${suffix}`;
      const workflowId = `cluster-smoke-${suffix}`;
      const handle = await client.workflow.start(survivesRestarts, {
        workflowId,
        taskQueue,
        args: ['hello'],
        typedSearchAttributes: [{ key: SerialKey, value: serial }],
      });
      // The worker ran its first tasks (timer, upsert) and visibility indexed them before anything is broken.
      await waitFor('the workflow waiting, in visibility', async () => ((await visible(`Serial = "${serial}" AND RequestStatus = "Waiting"`)).includes(workflowId) ? true : undefined), 60_000, 250);

      await cluster.killServer();
      await assert.rejects(
        connection.withDeadline(Date.now() + 2_000, () => handle.describe()),
        'the frontend must be gone while the server is killed',
      );
      await cluster.restartServer();
      await cluster.restartPostgres();

      // Connections the server held were cut by the restart; its first calls may still fail while it reconnects.
      await waitFor('the signal to be accepted', async () => (await handle.signal(proceedSignal), true), 60_000, 500);
      assert.equal(await handle.result(), 'echo:hello');

      await waitFor(
        'the completed workflow, in visibility by its custom search attributes',
        async () => ((await visible(`Serial = "${serial}" AND RequestStatus = "Done" AND ExecutionStatus = "Completed"`)).includes(workflowId) ? true : undefined),
        60_000,
        250,
      );
      assert.deepEqual(await visible(`Serial = "${serial}"`), [workflowId], 'one execution for the serial, no duplicate');
      const described = await handle.describe();
      assert.deepEqual(described.typedSearchAttributes.get(RequestStatusKey), 'Done');
    });

    test('a client without a certificate, with one from another CA, or in plaintext is refused; the server keeps serving', { timeout: 60_000 }, async () => {
      const tls = cluster.tls!;
      const serverTrust = { serverRootCACertificate: readFileSync(tls.caFile), serverNameOverride: tls.serverName };
      const stranger = await makeTemporalCertificates(`${cluster.dir}/stranger-tls`);
      const attempts = {
        'TLS without a client certificate': { tls: serverTrust },
        'a client certificate of another CA': { tls: { ...serverTrust, clientCertPair: { crt: readFileSync(stranger.clientCertFile), key: readFileSync(stranger.clientKeyFile) } } },
        plaintext: { tls: false as const },
      };
      for (const [what, options] of Object.entries(attempts)) {
        await assert.rejects(
          (async () => {
            const c = await Connection.connect({ address: cluster.address, connectTimeout: 5_000, ...options });
            try {
              await c.withDeadline(Date.now() + 5_000, () => new Client({ connection: c, namespace }).workflow.count());
            } finally {
              await c.close();
            }
          })(),
          `client: ${what}`,
        );
        await assert.rejects((async () => (await NativeConnection.connect({ address: cluster.address, ...options })).close())(), `worker: ${what}`);
      }
      // The refusals were the server's choice, not an outage: the certificate holder is served.
      assert.equal(typeof (await client.workflow.count()).count, 'number');
    });

    // The UI does not depend on how the server is configured: once is enough.
    if (serverConfig === 'file') {
      test('Temporal UI serves its settings with the codec endpoint given, and reads the cluster', { timeout: 60_000 }, async () => {
        const codecEndpoint = 'http://127.0.0.1:3000/codec';
        const ui = await cluster.startUi({ codecEndpoint, env: { TEMPORAL_CODEC_PASS_ACCESS_TOKEN: 'true' } });
        try {
          assert.match(ui.url, /^http:\/\/127\.0\.0\.1:\d+$/);
          const settings = (await (await fetch(`${ui.url}/api/v1/settings`)).json()) as {
            Codec: { Endpoint: string; PassAccessToken: boolean };
            DefaultNamespace: string;
            DisableNewsFetch: boolean;
          };
          assert.equal(settings.Codec.Endpoint, codecEndpoint);
          assert.equal(settings.Codec.PassAccessToken, true);
          assert.equal(settings.DefaultNamespace, namespace);
          assert.equal(settings.DisableNewsFetch, true);

          // Through the UI server's API to this cluster's frontend: the namespace the harness created.
          const described = await fetch(`${ui.url}/api/v1/namespaces/${namespace}`);
          assert.equal(described.status, 200, await described.clone().text());
          const body = (await described.json()) as { namespaceInfo: { name: string } };
          assert.equal(body.namespaceInfo.name, namespace);

          const page = await fetch(`${ui.url}/`);
          assert.equal(page.status, 200);
          assert.match(await page.text(), /<html/i, 'the UI assets are served');
        } finally {
          await ui.stop();
        }
        await assert.rejects(fetch(`${ui.url}/healthz`), 'the UI server is stopped');
      });
    }
  });
}
