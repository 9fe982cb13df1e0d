import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { generate } from 'selfsigned';
import { NetbirdApiError, NetbirdClient, type NetbirdClientOptions } from '../src/clients/netbird';
import { createNetbirdSimulator, loadNetbirdContract, type NetbirdExchange, type NetbirdListening, type NetbirdSimulator } from '../src/simulators/netbird';

const TOKEN = 'nbp_clientTestToken11111111111111111111';
const exchanges: NetbirdExchange[] = [];
let sim: NetbirdSimulator;
let server: NetbirdListening;
const clients: NetbirdClient[] = [];
let waits: number[] = [];

function client(overrides: Partial<NetbirdClientOptions> = {}): NetbirdClient {
  const c = new NetbirdClient({
    baseUrl: server.url,
    token: TOKEN,
    timeoutMs: 2_000,
    retry: { attempts: 3, baseDelayMs: 10, maxDelayMs: 500 },
    // Records the waits the retry policy asks for instead of sleeping them.
    sleep: async (ms) => void waits.push(ms),
    ...overrides,
  });
  clients.push(c);
  return c;
}

async function rejection(promise: Promise<unknown>): Promise<NetbirdApiError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof NetbirdApiError, `expected a NetbirdApiError, got ${String(err)}`);
    return err;
  }
  assert.fail('the call succeeded');
}

before(async () => {
  sim = createNetbirdSimulator({
    tokens: [TOKEN],
    users: [
      { email: 'owner@example.test', name: 'Olga Owner' },
      { email: 'c@example.test', name: 'Carl', role: 'user' },
    ],
    onExchange: (e) => exchanges.push(e),
  });
  server = await sim.listen({});
});

beforeEach(() => {
  sim.faults.reset();
  waits = [];
});

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await server.close();
});

describe('NetbirdClient against the simulator', () => {
  test('provisions and tears down what a VM build needs: groups, setup key, peer, policy', async () => {
    const nb = client();
    const device = await nb.createGroup({ name: 'device-VM-00001' });
    const consultants = await nb.createGroup({ name: 'consultants-VM-00001' });
    assert.deepEqual(
      (await nb.listGroups({ name: 'device-VM-00001' })).map((g) => g.id),
      [device.id],
    );

    const key = await nb.createSetupKey({ name: 'VM-00001', type: 'one-off', expires_in: 86_400, auto_groups: [device.id], usage_limit: 1 });
    assert.equal(key.valid, true);
    const peer = sim.enrollPeer({ setupKey: key.key, hostname: 'vm-00001' });
    assert.ok(peer);
    sim.enrollPeer({ setupKey: (await nb.createSetupKey({ name: 'other', type: 'one-off', expires_in: 86_400, auto_groups: [], usage_limit: 0 })).key, hostname: 'vm-000011' });

    // NetBird's name filter matches substrings; peersNamed keeps the exact one.
    assert.equal((await nb.listPeers({ name: 'vm-00001' })).length, 2);
    const [found] = await nb.peersNamed('vm-00001');
    assert.equal(found?.id, peer.id);
    assert.ok(found?.groups.some((g) => g.id === device.id));
    assert.equal((await nb.getPeer(peer.id)).dns_label, 'vm-00001.netbird.cloud');

    const users = await nb.listUsers();
    const carl = users.find((u) => u.name === 'Carl');
    assert.ok(carl);
    assert.deepEqual((await nb.updateUser(carl.id, { role: 'user', auto_groups: [consultants.id], is_blocked: false })).auto_groups, [consultants.id]);

    const policy = await nb.createPolicy({
      name: 'consultants-to-VM-00001',
      enabled: true,
      rules: [{ name: 'ssh', enabled: true, action: 'accept', bidirectional: false, protocol: 'tcp', ports: ['22'], sources: [consultants.id], destinations: [device.id] }],
    });
    assert.equal(policy.rules[0]?.destinations?.[0]?.id, device.id);
    assert.ok((await nb.listPolicies()).some((p) => p.id === policy.id));

    const refused = await rejection(nb.deleteGroup(device.id));
    assert.equal(refused.status, 400);
    assert.equal(refused.retryable, false);
    assert.equal(refused.operation, 'DELETE /api/groups/{groupId}');
    assert.equal(refused.netbirdMessage, 'group has been linked to policy: consultants-to-VM-00001');
    assert.match(refused.message, new RegExp(`DELETE /api/groups/${device.id} failed: 400 group has been linked`));
    assert.equal(refused.attempts, 1, 'a 4xx is not retried');

    // Teardown in the order NetBird allows.
    await nb.deletePeer(peer.id);
    await nb.deletePolicy(policy.id);
    const revoked = await nb.revokeSetupKey(key.id);
    assert.equal(revoked.revoked, true);
    assert.match(revoked.key, /^\w{5}\*{4}$/, 'reads show the key masked');
    await nb.deleteSetupKey(key.id);
    await nb.updateUser(carl.id, { role: 'user', auto_groups: [], is_blocked: false });
    await nb.deleteGroup(device.id);
    await nb.deleteGroup(consultants.id);
    assert.equal((await rejection(nb.getGroup(device.id))).notFound, true);
    assert.equal((await nb.getSetupKey((await nb.listSetupKeys())[0]!.id)).name, 'other');
    const updatedGroup = await nb.updateGroup((await nb.createGroup({ name: 'g2' })).id, { name: 'g2', peers: [] });
    assert.equal(updatedGroup.peers_count, 0);
  });

  test('retries a burst of 5xx on a read and succeeds', async () => {
    sim.faults.set({ failNextRequests: 2, failStatus: 502 });
    const before = sim.callCounts()['GET /api/groups'] ?? 0;
    const groups = await client().listGroups();
    assert.ok(groups.some((g) => g.name === 'All'));
    assert.equal(sim.callCounts()['GET /api/groups'], before + 3);
    assert.equal(waits.length, 2);
  });

  test('honours Retry-After on 429, capped by the policy, and retries a create only then', async () => {
    sim.faults.set({ failNextRequests: 1, failStatus: 429, retryAfterSeconds: 2 });
    await client({ retry: { attempts: 3, baseDelayMs: 10, maxDelayMs: 60_000 } }).createGroup({ name: 'after-429' });
    assert.equal(waits.length, 1);
    assert.ok(waits[0]! >= 2_000 && waits[0]! <= 2_010, `waited ${waits[0]} ms: Retry-After plus at most one backoff of jitter`);

    waits = [];
    sim.faults.set({ failNextRequests: 1, failStatus: 429, retryAfterSeconds: 30 });
    await client({ retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 250 } }).listPolicies();
    assert.deepEqual(waits, [250]);
  });

  test('does not repeat a create after a 5xx (NetBird may have made it), but says it is retryable', async () => {
    sim.faults.set({ failNextRequests: 1, failStatus: 503 });
    const err = await rejection(client().createGroup({ name: 'maybe-made' }));
    assert.equal(err.status, 503);
    assert.equal(err.retryable, true);
    assert.equal(err.attempts, 1);
  });

  test('gives up after the bounded attempts with a retryable NetbirdApiError', async () => {
    sim.faults.set({ errorRate5xx: 1 });
    const err = await rejection(client().listPeers());
    assert.equal(err.status, 503);
    assert.equal(err.retryable, true);
    assert.equal(err.attempts, 3);
    assert.equal(err.operation, 'GET /api/peers');
    assert.equal(waits.length, 2);
  });

  test('a timeout is a retryable transport failure without a status', async () => {
    sim.faults.set({ latencyMs: 300 });
    const err = await rejection(client({ timeoutMs: 50, retry: { attempts: 1 } }).listUsers());
    assert.equal(err.status, undefined);
    assert.equal(err.retryable, true);
  });

  test('a refused token is reported without the token', async () => {
    const secret = 'nbp_thisTokenMustNeverAppear000000000000';
    const err = await rejection(client({ token: secret }).listGroups());
    assert.equal(err.status, 401);
    assert.equal(err.retryable, false);
    assert.ok(!err.message.includes(secret) && !JSON.stringify(err).includes(secret));
  });

  test('talks TLS to a server whose CA it was given', async () => {
    const pem = await generate([{ name: 'commonName', value: '127.0.0.1' }], {
      keySize: 2048,
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
    });
    const tls = await sim.listen({ tls: { key: pem.private, cert: pem.cert } });
    try {
      assert.ok(tls.url.startsWith('https://'));
      const trusted = client({ baseUrl: `${tls.url}/api`, ca: pem.cert });
      assert.ok((await trusted.listUsers()).length >= 1);
      const untrusted = await rejection(client({ baseUrl: tls.url, retry: { attempts: 1 } }).listUsers());
      assert.equal(untrusted.status, undefined);
    } finally {
      await tls.close();
    }
  });

  test('every response the client received validates against the NetBird spec', () => {
    const contract = loadNetbirdContract();
    assert.ok(exchanges.length > 25, `saw only ${exchanges.length} responses`);
    const problems = exchanges.flatMap((e) => contract.checkResponse(e.method, e.template, e.status, e.body).map((p) => `${e.method} ${e.template} ${e.status}: ${p}`));
    assert.deepEqual(problems, []);
  });
});
