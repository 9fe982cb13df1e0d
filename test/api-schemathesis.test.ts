import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { createApp } from '../src/api/app';
import { ApiKeyStore, generateApiKey } from '../src/api/auth/apiKeys';
import { defaultRequestPolicy } from '../src/domain/requestPolicyRules';
import { requireTemporalBinary } from '../src/temporal/binaries';
import { apiKeyRegistryWorkflowId } from '../src/contracts/workflowIds';
import { searchAttributeDefinitions } from '../src/contracts/searchAttributes';
import type { ClusterSyncResult } from '../src/contracts/types';
import { quietLogger } from './support/quietLogger';
import { validRequestBody } from './support/requests';
import { apiRequestDriver, keyedApiCall } from './support/apiRequestDriver';
import { waitFor } from './support/waitFor';

/**
 * An independent fuzzer against the API's own document: schemathesis (PyPI, installed by .ci/run into .tools/venv)
 * reads /api/openapi.json, generates valid and invalid calls for every operation and checks each answer — status
 * documented, body and headers as documented, no 500, invalid input refused, unserved methods 405 with Allow,
 * authentication not ignored, log stream events as documented. A real dev server, a stand-in request workflow that
 * stays Pending.
 */
const ST = resolve(__dirname, '../.tools/venv/bin/st');
const missing = !existsSync(ST);
const operator = { id: 'ops', role: 'operator' as const, key: generateApiKey() };

describe('schemathesis against /api/openapi.json', { skip: missing && !process.env.CI && 'schemathesis not installed (bash .ci/run installs it into .tools/venv)' }, () => {
  let env: TestWorkflowEnvironment;
  let worker: Worker;
  let running: Promise<void>;
  let server: Server;
  let base: string;
  let serial: string;
  let classId: string;
  let configDir: string;
  const auth = { authorization: `Bearer ${operator.key}` };

  before(async () => {
    assert.ok(!missing, `${ST} is missing: .ci/run installs schemathesis into .tools/venv`);
    env = await TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path: requireTemporalBinary('temporal') }, searchAttributes: searchAttributeDefinitions },
    });
    const taskQueue = `schemathesis-${process.pid}`;
    const bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('./support/pendingRequestWorkflow'), logger: quietLogger });
    worker = await Worker.create({ connection: env.nativeConnection, namespace: 'default', taskQueue, workflowBundle: bundle });
    running = worker.run();
    const app = createApp({
      client: env.client,
      taskQueue,
      policy: defaultRequestPolicy,
      apiKeys: new ApiKeyStore([operator]),
      webhookSecret: `whsec-${generateApiKey()}`,
      timings: { writesPerMinute: 0, temporalTimeoutMs: 5_000 },
    });
    server = await new Promise<Server>((ok) => {
      const s = app.listen(0, '127.0.0.1', () => ok(s));
    });
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    // The world schemathesis meets: a completed cluster sync (templates), a request and a class to act on.
    const synced: ClusterSyncResult = { at: new Date().toISOString(), vmsSeen: 1, requestsChecked: 0, drifts: [], orphans: [], orphanCount: 0, templates: [{ vmid: 9000, name: 'debian-12-cloudinit', node: 'pve1' }] };
    await env.client.workflow.execute('clusterSync', { taskQueue, workflowId: `sync-${process.pid}`, args: [synced] });
    // The key registry a worker starts at its start-up: issuing and revoking keys go through it.
    await env.client.workflow.start('apiKeyRegistry', { taskQueue, workflowId: apiKeyRegistryWorkflowId(taskQueue), args: [{}] });
    await waitFor('the sync in visibility', async () => ((await fetch(`${base}/api/templates`, { headers: auth })).status === 200 ? true : undefined), 20_000);
    const period = { start: new Date(Date.now() + 24 * 3600_000).toISOString(), end: new Date(Date.now() + 3 * 24 * 3600_000).toISOString() };
    const requests = apiRequestDriver(keyedApiCall(() => base, operator.key));
    serial = (await requests.startPending(validRequestBody({ period }))).serial;
    classId = (await requests.startClass({ ...validRequestBody({ period }), name: 'lab' }, 2)).classId;
    configDir = mkdtempSync(join(tmpdir(), 'pveflow-schemathesis-'));
  });

  after(async () => {
    if (server)
      await new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      });
    worker?.shutdown();
    await running;
    await env?.teardown();
    if (configDir) rmSync(configDir, { recursive: true, force: true });
  });

  test('every check passes on every operation', async (t) => {
    const config = join(configDir, 'schemathesis.toml');
    writeFileSync(
      config,
      [
        // A log stream stays open; the stand-in request's stream opens with two events (status, timeline).
        'max-stream-events = 2',
        // Path parameters that exist, so that calls reach the workflows and not only 404 (the random ones are our own
        // property test's job).
        '[parameters]',
        `serial = "${serial}"`,
        `id = "${classId}"`,
        // "Schema-valid data is accepted" cannot hold where the document states a rule no JSON schema can: a
        // next_page_token is the server's MAC'd token; a period's rules are relative to now and between its
        // dates (policy `rule`s); a resize's disk is held to REQUEST_MAX_DISK_GIB, configuration the document names but
        // cannot put in a schema (choice-limit). test/api-openapi.property checks there that such a 400 names its rule.
        '[[operations]]',
        'include-operation-id = ["listDeviceRequests", "submitDeviceRequest", "submitClass", "extendDeviceRequest", "reconfigureVm"]',
        'checks.positive_data_acceptance.enabled = false',
        // The same for rules between fields and against policy: an image's source is a URL (http/https, a disk image
        // file, no loopback host in production: rule image-url) with a checksum of its algorithm's length
        // (checksum-length), or a volume (image-source); a key's org and email follow its role (key-fields) and its
        // expiry lies ahead of now (key-expiry). The property test checks that each such 400 names its rule.
        '[[operations]]',
        'include-operation-id = ["importImage", "createApiKey"]',
        'checks.positive_data_acceptance.enabled = false',
        // An import is accepted (202), not an image made: the image is in the catalogue once the import completes
        // (GET /api/image-imports/{name} follows it), so a DELETE of it right after the POST is rightly 404.
        'checks.ensure_resource_availability.enabled = false',
        '',
      ].join('\n'),
    );
    const args = [
      '--config-file',
      config,
      'run',
      `${base}/api/openapi.json`,
      '--header',
      `Authorization: Bearer ${operator.key}`,
      '--max-examples',
      process.env.PVEFLOW_SCHEMATHESIS_EXAMPLES ?? '15',
      '--workers',
      '1',
      '--request-timeout',
      '15',
      '--seed',
      process.env.PVEFLOW_SCHEMATHESIS_SEED ?? '1',
      '--no-color',
    ];
    const { code, output } = await new Promise<{ code: number | null; output: string }>((ok) => {
      // Run in the temporary directory: schemathesis keeps a cache (.schemathesis/) in its working directory.
      const child = spawn(ST, args, { cwd: configDir, env: { PATH: process.env.PATH, HOME: process.env.HOME, SCHEMATHESIS_HOOKS: '' } });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      child.on('close', (c) => ok({ code: c, output: out }));
    });
    for (const line of output.slice(output.lastIndexOf('SUMMARY')).split('\n')) if (line.trim()) t.diagnostic(line);
    assert.equal(code, 0, `schemathesis found problems:\n${output.slice(-20_000)}`);
  });
});
