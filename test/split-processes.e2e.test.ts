import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { generateApiKey } from '../src/api/auth/apiKeys';
import { simulatorTimings } from '../src/embedded/simulatorTimings';
import { startSimulatedWorld, type SimulatedWorld } from '../src/simulators/world';
import { startChaosCluster, type ChaosCluster } from './support/chaosCluster';
import { clearPayloadsOfTaskQueue } from './support/historyPayloads';
import { historyPlaintext } from './support/historyText';
import { validRequestBody } from './support/requests';
import { apiRequestDriver } from './support/apiRequestDriver';
import { waitFor } from './support/waitFor';

/**
 * The production topology's shape on the dev server: the API (`npm run api`) and a worker (`npm run worker`) as
 * their own processes, both with the same codec keys. A whole request through the API — submit, read, approve, logs,
 * credentials, complete — answers what happened at every step (no 503 for an action that took effect), and the raw
 * histories, read without the keys, hold no payload of ours in clear.
 */

describe('API and worker as separate processes, payloads encrypted', () => {
  const taskQueue = `split-${process.pid}`;
  let dir: string;
  let world: SimulatedWorld;
  let cluster: ChaosCluster;
  const keys = {
    requester: { id: 'rita', role: 'requester', org: 'Acme Corp', email: 'rita@acme.example', key: generateApiKey() },
    admin: { id: 'ada', role: 'admin', org: 'Acme Corp', email: 'ada@acme.example', key: generateApiKey() },
    consultant: { id: 'alice', role: 'requester', org: 'Acme Corp', email: 'alice@consultancy.example', key: generateApiKey() },
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pveflow-split-'));
    world = await startSimulatedWorld({ dir: join(dir, 'sim'), timing: simulatorTimings.fast });
    cluster = await startChaosCluster({ dir, world, taskQueue, keys: Object.values(keys) });
  });

  after(async () => {
    await cluster?.stop();
    await world?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const api = async (method: string, path: string, as: keyof typeof keys | 'operator', body?: unknown) => {
    const key = as === 'operator' ? cluster.operatorKey : keys[as].key;
    const res = await fetch(`${cluster.apiUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    return { status: res.status, text, body: text && /json/.test(res.headers.get('content-type') ?? '') ? JSON.parse(text) : undefined };
  };

  const requests = apiRequestDriver((method, path, as, body) => api(method, path, ({ submitter: 'requester', approver: 'admin', reader: 'requester' } as const)[as], body));
  /** A failed build in another process: its logs say why. */
  const withLogs = (err: Error): never => {
    throw new Error(`${err.message}\n${cluster.logTails()}`);
  };

  test('a whole request through the API alone answers what happened, and Temporal holds only ciphertext', async () => {
    const sshKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHNwbGl0LXByb2Nlc3Nlcy1tYXJrZXIta2V5LTAwMDA split@test';
    const name = 'split-marker-name';
    // The API process may still be connecting when the first call comes: a refused connection is no answer yet.
    await waitFor('the API to answer', async () => (await fetch(`${cluster.apiUrl}/readyz`).catch(() => undefined))?.status === 200 || undefined, 60_000);
    // Reads are answered by the workflow (a query): a worker must be polling, or the API rightly answers 504.
    await waitFor('the worker to poll', async () => /worker polling/.test(cluster.logTails(400)) || undefined, 120_000);

    const request = await requests.startPending(validRequestBody({ name, ssh_keys: [sshKey], consultants: ['alice@consultancy.example'] }));
    const { serial } = request;

    const pending = await api('GET', `/api/device_requests/${serial}`, 'requester');
    assert.equal(pending.status, 200, `the API reads what it wrote: ${pending.text}`);
    assert.equal(pending.body.status, 'Pending');
    assert.equal(pending.body.request.name, name);

    const approved = await request.approve();
    assert.equal(approved.status, 200, `an approval that took effect is answered as such: ${JSON.stringify(approved.body)}`);

    const fulfilled = await request.waitForStatus('Fulfilled', { timeoutMs: 120_000 }).catch(withLogs);
    assert.ok(fulfilled.device.ip && fulfilled.device.vmid, JSON.stringify(fulfilled.device));

    const logs = await fetch(`${cluster.apiUrl}/api/device_requests/${serial}/logs`, { headers: { authorization: `Bearer ${keys.requester.key}` }, signal: AbortSignal.timeout(30_000) });
    assert.equal(logs.status, 200);
    const sse = await logs.text();
    assert.match(sse, /event: log\n/);
    assert.match(sse, /event: end\ndata: \{"status":"Fulfilled"/);

    const creds = await api('GET', `/api/device_requests/${serial}/credentials`, 'consultant');
    assert.equal(creds.status, 200, creds.text);
    assert.ok(typeof creds.body.password === 'string' && creds.body.password.length >= 12);

    const listed = await api('GET', '/api/device_requests?org=Acme%20Corp', 'admin');
    assert.equal(listed.status, 200);
    assert.deepEqual(
      listed.body.items.map((i: { serial: string }) => i.serial),
      [serial],
    );

    const completing = await api('POST', `/api/device_requests/${serial}/complete`, 'requester', {});
    assert.equal(completing.status, 200, completing.text);
    const done = await request.waitForStatus('Completed', { timeoutMs: 120_000 });
    assert.equal(done.status, 'Completed');
    assert.equal(world.pve.dump().vms.filter((v) => v.vmid === fulfilled.device.vmid).length, 0, 'the VM is gone');

    // Read as someone with Temporal access but no codec keys would: nothing of ours in clear.
    const connection = await Connection.connect({ address: cluster.temporalAddress });
    try {
      const raw = new Client({ connection });
      // Listed through the raw visibility call: the client's own list would try to decode each (encrypted) memo.
      const { workflows, findings } = await clearPayloadsOfTaskQueue(raw, taskQueue, (workflowId, history) => {
        const text = historyPlaintext(history);
        // The name is a search attribute (VmName), readable by design like Serial and Org; the key and the logins are not.
        for (const secret of [sshKey.split(' ')[1]!, creds.body.password, creds.body.root_password]) assert.ok(!text.includes(secret), `${workflowId} holds ${secret.slice(0, 12)}… in clear`);
      });
      assert.ok(workflows >= 3, `the request, its build and its cleanup were read (${workflows})`);
      assert.deepEqual(findings, [], 'every payload is encrypted');
    } finally {
      await connection.close();
    }
  });
});
