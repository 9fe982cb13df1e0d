import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import { generateApiKey, hashApiKey } from '../src/api/auth/apiKeys';
import { runCli } from '../src/cli/main';
import { searchAttributeDefinitions } from '../src/contracts/searchAttributes';
import { apiKeyRegistryWorkflowId } from '../src/contracts/workflowIds';
import { startDevServer, type RunningDevServer } from '../src/embedded/devServer';
import { ensureCoordinators } from '../src/temporal/coordinators';
import { historyPlaintext } from './support/historyText';
import { freePort } from './support/ports';
import { quietLogger } from './support/quietLogger';
import { supervise, type Supervised } from './support/supervisor';
import { waitFor } from './support/waitFor';

/**
 * API keys issued at run time, across a deployment: two API processes (`src/api/main.ts`, each its own process) on
 * one Temporal with a worker running the key registry. A key issued through one is taken by the other within seconds
 * and refused by both within seconds of its revocation, with no restart; the key is answered once and is nowhere in
 * the registry's history nor in the processes' logs.
 */
describe('API keys issued and revoked at run time, in every API process', () => {
  const taskQueue = `api-keys-${process.pid}`;
  const file = {
    operator: { id: 'ops', role: 'operator', key: generateApiKey() },
    admin: { id: 'ada', role: 'admin', org: 'Acme Corp', email: 'ada@acme.example', key: generateApiKey() },
    requester: { id: 'rita', role: 'requester', org: 'Acme Corp', email: 'rita@acme.example', key: generateApiKey() },
  };
  let dir: string;
  let temporal: RunningDevServer;
  let worker: Worker;
  let running: Promise<void>;
  let client: Client;
  let connection: Connection;
  const apis: Array<{ url: string; process: Supervised; log: string }> = [];
  /** Every key the test was given: none may appear in a log or the history. */
  const secrets: string[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pveflow-api-keys-'));
    temporal = await startDevServer({
      ip: '127.0.0.1',
      port: await freePort(),
      uiPort: await freePort(),
      dbFile: join(dir, 'temporal.db'),
      namespace: 'default',
      searchAttributes: searchAttributeDefinitions,
      logFile: join(dir, 'temporal.log'),
    });
    connection = await Connection.connect({ address: temporal.address });
    client = new Client({ connection });
    // The worker's part: the registry is started as a worker starts it, and this worker runs it.
    await ensureCoordinators(client, taskQueue);
    const workflowBundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../src/workflows'), logger: quietLogger });
    worker = await Worker.create({ connection: await NativeConnection.connect({ address: temporal.address }), namespace: 'default', taskQueue, workflowBundle });
    running = worker.run();
    for (const name of ['a', 'b']) {
      const port = await freePort();
      const log = join(dir, `api-${name}.log`);
      const proc = supervise(
        'src/api/main.ts',
        {
          PATH: process.env.PATH,
          TEMPORAL_ADDRESS: temporal.address,
          TEMPORAL_TASK_QUEUE: taskQueue,
          CREDENTIAL_KEYS_DIR: join(dir, 'credential-keys'),
          API_HOST: '127.0.0.1',
          API_PORT: String(port),
          API_KEYS: JSON.stringify({ keys: Object.values(file) }),
          LOG_LEVEL: 'debug',
        },
        log,
      );
      apis.push({ url: `http://127.0.0.1:${port}`, process: proc, log });
    }
    for (const api of apis) {
      await waitFor(`the API at ${api.url}`, async () => ((await fetch(`${api.url}/readyz`).catch(() => undefined))?.status === 200 ? true : undefined), 120_000);
    }
  });

  after(async () => {
    await Promise.allSettled(apis.map((a) => a.process.stop('SIGTERM')));
    worker?.shutdown();
    await running;
    await connection?.close();
    await temporal?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const call = async (api: 0 | 1, method: string, path: string, key: string, body?: unknown) => {
    const res = await fetch(`${apis[api]!.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    return { status: res.status, text, body: text && /json/.test(res.headers.get('content-type') ?? '') ? JSON.parse(text) : undefined };
  };
  const logsOf = () => apis.map((a) => readFileSync(a.log, 'utf8')).join('\n');

  test('a key issued through one API process works in the other within seconds, and stops within seconds of its revocation', async () => {
    const issued = await call(0, 'POST', '/api/api_keys', file.operator.key, { name: 'ci pipeline', role: 'requester', org: 'Acme Corp', email: 'ci@acme.example' });
    assert.equal(issued.status, 201, issued.text);
    const { key, id } = issued.body as { key: string; id: string };
    secrets.push(key);
    assert.match(key, /^pvf_/);
    assert.equal(issued.body.owner, 'operator:ops');
    assert.equal(issued.body.source, 'issued');
    // The process that issued it takes it at once; the other within its refresh.
    assert.equal((await call(0, 'GET', '/api/session', key)).status, 200);
    const session = await waitFor('the other API process to take the new key', async () => {
      const r = await call(1, 'GET', '/api/session', key);
      return r.status === 200 ? r.body : undefined;
    });
    assert.deepEqual({ id: session.id, role: session.role, org: session.org, email: session.email }, { id, role: 'requester', org: 'Acme Corp', email: 'ci@acme.example' });

    // Listed with its owner, never with the key; its use is visible, coarsely.
    const listed = await waitFor('its last use in the list', async () => {
      const r = await call(1, 'GET', '/api/api_keys', file.operator.key);
      assert.equal(r.status, 200, r.text);
      const mine = (r.body.items as Array<Record<string, unknown>>).find((k) => k.id === id);
      return mine?.last_used_at ? r : undefined;
    });
    assert.ok(!listed.text.includes(key), 'the list never shows a key');
    assert.ok(!listed.text.includes(hashApiKey(key)), 'nor its hash');
    const fileKey = (listed.body.items as Array<Record<string, unknown>>).find((k) => k.id === 'ops');
    assert.equal(fileKey?.source, 'file');
    assert.ok(fileKey?.last_used_at, 'the key of the file shows its last use too');

    const revoked = await call(1, 'DELETE', `/api/api_keys/${id}`, file.operator.key);
    assert.equal(revoked.status, 200, revoked.text);
    assert.equal(revoked.body.id, id);
    assert.equal((await call(1, 'GET', '/api/session', key)).status, 401, 'the revoking process refuses it at once');
    await waitFor('the first API process to refuse the revoked key', async () => ((await call(0, 'GET', '/api/session', key)).status === 401 ? true : undefined));
    assert.equal((await call(1, 'DELETE', `/api/api_keys/${id}`, file.operator.key)).status, 404, 'a revoked key is gone');
  });

  test('an expired key is refused, saying it expired; an expiry in the past is bad input', async () => {
    const past = await call(0, 'POST', '/api/api_keys', file.operator.key, { name: 'late', role: 'operator', expires_at: '2001-01-01T00:00:00Z' });
    assert.equal(past.status, 400, past.text);
    assert.deepEqual(past.body.issues, [{ field: 'expires_at', reason: 'must be in the future', rule: 'key-expiry' }]);
    const missing = await call(0, 'POST', '/api/api_keys', file.operator.key, { role: 'admin', org: 'Acme Corp', colour: 'red' });
    assert.equal(missing.status, 400);
    assert.deepEqual(missing.body.issues.map((i: { field: string }) => i.field).sort(), ['colour', 'name']);

    const soon = new Date(Date.now() + 3_000).toISOString();
    const issued = await call(0, 'POST', '/api/api_keys', file.operator.key, { name: 'short-lived', role: 'admin', org: 'Acme Corp', expires_at: soon });
    assert.equal(issued.status, 201, issued.text);
    secrets.push(issued.body.key);
    // Until the other process has read it the key is merely unknown there; then it works; then it has expired.
    const refused = await waitFor('the key to expire', async () => {
      const r = await call(1, 'GET', '/api/session', issued.body.key);
      return r.status === 401 && /expired/.test(r.body.detail) ? r : undefined;
    });
    assert.equal(refused.body.detail, `API key ${issued.body.id} expired at ${issued.body.expires_at}`);
    const listed = await call(0, 'GET', '/api/api_keys', file.operator.key);
    assert.equal((listed.body.items as Array<Record<string, unknown>>).find((k) => k.id === issued.body.id)?.expired, true);
  });

  test('an admin issues requester and admin keys of its own org only; a requester manages none', async () => {
    const operatorKey = await call(0, 'POST', '/api/api_keys', file.admin.key, { name: 'climb', role: 'operator' });
    assert.equal(operatorKey.status, 403, operatorKey.text);
    assert.match(operatorKey.body.detail, /may issue requester and admin keys only/);
    const otherOrg = await call(0, 'POST', '/api/api_keys', file.admin.key, { name: 'elsewhere', role: 'requester', org: 'Globex', email: 'g@globex.example' });
    assert.equal(otherOrg.status, 403, otherOrg.text);
    assert.match(otherOrg.body.detail, /only for its own org Acme Corp/);
    assert.equal((await call(0, 'GET', '/api/api_keys', file.requester.key)).status, 403);
    assert.equal((await call(0, 'POST', '/api/api_keys', file.requester.key, { name: 'me too', role: 'requester', email: 'rita@acme.example' })).status, 403);

    // The admin's own org when it names none.
    const own = await call(0, 'POST', '/api/api_keys', file.admin.key, { name: 'intern', role: 'requester', email: 'ivan@acme.example' });
    assert.equal(own.status, 201, own.text);
    secrets.push(own.body.key);
    assert.equal(own.body.org, 'Acme Corp');
    assert.equal(own.body.owner, 'ada@acme.example');

    // A key of another org is not the admin's to see or revoke.
    const globex = await call(0, 'POST', '/api/api_keys', file.operator.key, { name: 'globex admin', role: 'admin', org: 'Globex' });
    assert.equal(globex.status, 201, globex.text);
    secrets.push(globex.body.key);
    const adminList = await call(1, 'GET', '/api/api_keys', file.admin.key);
    assert.equal(adminList.status, 200);
    const orgs = new Set((adminList.body.items as Array<{ org?: string }>).map((k) => k.org));
    assert.deepEqual([...orgs], ['Acme Corp']);
    assert.equal((await call(1, 'DELETE', `/api/api_keys/${globex.body.id}`, file.admin.key)).status, 404);
    assert.equal((await call(1, 'DELETE', `/api/api_keys/${own.body.id}`, file.admin.key)).status, 200);
    assert.equal((await call(1, 'DELETE', '/api/api_keys/ada', file.admin.key)).status, 409, 'a key of the file is changed there');
    assert.equal((await call(1, 'DELETE', '/api/api_keys/no%20such', file.admin.key)).status, 400);
  });

  test('pveflow keys create, list and revoke', async () => {
    const cli = async (...args: string[]) => {
      let stdout = '';
      let stderr = '';
      const sink = (append: (s: string) => void) => ({ write: (s: string) => (append(s), true) }) as unknown as NodeJS.WriteStream;
      const code = await runCli(args, {
        stdout: sink((s) => (stdout += s)),
        stderr: sink((s) => (stderr += s)),
        env: { PVEFLOW_API_URL: apis[0]!.url, PVEFLOW_API_KEY: file.operator.key },
      });
      return { code, stdout, stderr };
    };
    const created = await cli('keys', 'create', '--name', 'nightly', '--role', 'admin', '--org', 'Acme Corp', '--expires', '+30d');
    assert.equal(created.code, 0, created.stderr);
    const key = created.stdout.trim();
    secrets.push(key);
    assert.match(key, /^pvf_[A-Za-z0-9_-]+$/, 'stdout is the key alone');
    const id = /issued (key-[0-9a-f]+)/.exec(created.stderr)?.[1];
    assert.ok(id, created.stderr);
    await waitFor('the CLI key in the other process', async () => ((await call(1, 'GET', '/api/session', key)).status === 200 ? true : undefined));

    const listed = await cli('keys', 'list');
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(`${id}\\s+nightly\\s+admin\\s+Acme Corp`));
    assert.ok(!listed.stdout.includes(key));

    const bad = await cli('keys', 'create', '--name', 'x', '--role', 'wizard');
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /role/);

    const revoked = await cli('keys', 'revoke', id);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.match(revoked.stdout, new RegExp(`revoked ${id}`));
    await waitFor('the revoked CLI key refused everywhere', async () => ((await call(1, 'GET', '/api/session', key)).status === 401 ? true : undefined));
    assert.ok(!(await cli('keys', 'list')).stdout.includes(id));
  });

  test('no key is in the registry’s history or in the logs; its hash is', async () => {
    assert.ok(secrets.length >= 4, 'the tests above issued keys');
    // No codec keys configured: the history is in clear, what even a holder of the codec keys would read.
    const history = historyPlaintext(await client.workflow.getHandle(apiKeyRegistryWorkflowId(taskQueue)).fetchHistory());
    assert.ok(history.includes(hashApiKey(secrets[0]!)), 'the history read is the registry’s, and holds the hash');
    const logs = logsOf();
    assert.match(logs, /API listening/, 'the logs read are the API processes’');
    for (const secret of [...secrets, ...Object.values(file).map((f) => f.key)]) {
      assert.ok(!history.includes(secret), `the history holds key ${secret.slice(0, 8)}…`);
      assert.ok(!logs.includes(secret), `a log holds key ${secret.slice(0, 8)}…`);
    }
  });
});
