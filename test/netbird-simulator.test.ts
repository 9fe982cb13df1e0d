import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { createNetbirdSimulator, loadNetbirdContract, NetbirdEnrollmentError, type NetbirdExchange, type NetbirdListening, type NetbirdSimulator } from '../src/simulators/netbird';

const TOKEN = 'nbp_simulatorTestToken0000000000000000';
const contract = loadNetbirdContract();

const exchanges: NetbirdExchange[] = [];
let sim: NetbirdSimulator;
let server: NetbirdListening;

async function api(method: string, path: string, body?: unknown, token: string | null = TOKEN) {
  const res = await request(`${server.url}${path}`, {
    method: method as 'GET',
    headers: {
      ...(token !== null && { authorization: `Token ${token}` }),
      ...(body !== undefined && { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    headersTimeout: 5_000,
    bodyTimeout: 5_000,
  });
  return { status: res.statusCode, body: (await res.body.json()) as any };
}

const setupKeyBody = (auto_groups: string[], extra: Record<string, unknown> = {}) => ({
  name: 'vm key',
  type: 'one-off',
  expires_in: 86_400,
  auto_groups,
  usage_limit: 0,
  ...extra,
});

const ruleBody = (sources: string[], destinations: string[]) => ({
  name: 'consultants to device',
  enabled: true,
  action: 'accept',
  bidirectional: false,
  protocol: 'tcp',
  ports: ['22', '443'],
  sources,
  destinations,
});

before(async () => {
  sim = createNetbirdSimulator({
    tokens: [TOKEN],
    users: [
      { email: 'owner@example.test', name: 'Olga Owner' },
      { email: 'consultant@example.test', name: 'Carl Consultant', role: 'user' },
    ],
    onExchange: (e) => exchanges.push(e),
  });
  server = await sim.listen({});
});

after(async () => {
  await server.close();
});

describe('NetBird simulator', () => {
  test('requests without a valid personal access token are answered 401 in NetBird error shape', async () => {
    const missing = await api('GET', '/api/groups', undefined, null);
    assert.equal(missing.status, 401);
    assert.deepEqual(Object.keys(missing.body).sort(), ['code', 'message']);
    assert.equal(missing.body.code, 401);

    const wrong = await api('GET', '/api/groups', undefined, 'nbp_wrong');
    assert.equal(wrong.status, 401);
    assert.equal(typeof wrong.body.message, 'string');

    const bearer = await request(`${server.url}/api/groups`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(bearer.statusCode, 401);
    await bearer.body.dump();
  });

  test('a body the spec rejects is answered 400 naming the problem', async () => {
    const noExpiry = await api('POST', '/api/setup-keys', { name: 'k', type: 'reusable', auto_groups: [], usage_limit: 0 });
    assert.equal(noExpiry.status, 400);
    assert.match(noExpiry.body.message, /expires_in/);

    const tooShort = await api('POST', '/api/setup-keys', setupKeyBody([], { expires_in: 60 }));
    assert.equal(tooShort.status, 400);
    assert.match(tooShort.body.message, /expires_in must be >= 86400/);

    const badProtocol = await api('POST', '/api/policies', {
      name: 'p',
      enabled: true,
      rules: [{ ...ruleBody(['a'], ['b']), protocol: 'sctp' }],
    });
    assert.equal(badProtocol.status, 400);
    assert.match(badProtocol.body.message, /\/rules\/0\/protocol/);

    const notJson = await api('POST', '/api/groups', '{"name":');
    assert.equal(notJson.status, 400);
    assert.equal(notJson.body.message, "couldn't parse JSON request");
  });

  test('content NetBird refuses after parsing is answered 422, duplicates 409, unknown ids 404', async () => {
    assert.equal((await api('POST', '/api/groups', { name: '' })).status, 422);
    assert.equal((await api('POST', '/api/setup-keys', setupKeyBody([], { type: 'forever' }))).status, 422);
    assert.equal((await api('POST', '/api/groups', { name: 'All' })).status, 409);
    for (const path of ['/api/peers/nope', '/api/groups/nope', '/api/policies/nope', '/api/setup-keys/nope']) {
      const res = await api('GET', path);
      assert.equal(res.status, 404, path);
      assert.equal(res.body.code, 404);
    }
    assert.equal((await api('DELETE', '/api/peers/nope')).status, 404);
    assert.equal((await api('PUT', '/api/users/nope', { role: 'user', auto_groups: [], is_blocked: false })).status, 404);
  });

  test('a group still used by a policy, a setup key or a user cannot be deleted; All never', async () => {
    const groups = (await api('GET', '/api/groups')).body as Array<{ id: string; name: string }>;
    const all = groups.find((g) => g.name === 'All');
    assert.ok(all);
    const refusedAll = await api('DELETE', `/api/groups/${all.id}`);
    assert.equal(refusedAll.status, 400);
    assert.match(refusedAll.body.message, /ALL is not allowed/);

    const device = (await api('POST', '/api/groups', { name: 'device-in-use' })).body;
    const consultants = (await api('POST', '/api/groups', { name: 'consultants-in-use' })).body;
    const policy = (await api('POST', '/api/policies', { name: 'access-in-use', enabled: true, rules: [ruleBody([consultants.id], [device.id])] })).body;
    const byPolicy = await api('DELETE', `/api/groups/${device.id}`);
    assert.equal(byPolicy.status, 400);
    assert.equal(byPolicy.body.message, 'group has been linked to policy: access-in-use');

    assert.equal((await api('DELETE', `/api/policies/${policy.id}`)).status, 200);
    const key = (await api('POST', '/api/setup-keys', setupKeyBody([device.id], { name: 'key-in-use' }))).body;
    const byKey = await api('DELETE', `/api/groups/${device.id}`);
    assert.equal(byKey.status, 400);
    assert.equal(byKey.body.message, 'group has been linked to setup key: key-in-use');

    assert.equal((await api('DELETE', `/api/setup-keys/${key.id}`)).status, 200);
    const users = (await api('GET', '/api/users')).body as Array<{ id: string; role: string }>;
    const consultant = users.find((u) => u.role === 'user');
    assert.ok(consultant);
    const put = await api('PUT', `/api/users/${consultant.id}`, { role: 'user', auto_groups: [consultants.id], is_blocked: false });
    assert.deepEqual(put.body.auto_groups, [consultants.id]);
    const byUser = await api('DELETE', `/api/groups/${consultants.id}`);
    assert.equal(byUser.status, 400);
    assert.match(byUser.body.message, /linked to user/);

    await api('PUT', `/api/users/${consultant.id}`, { role: 'user', auto_groups: [], is_blocked: false });
    assert.equal((await api('DELETE', `/api/groups/${consultants.id}`)).status, 200);
    assert.equal((await api('DELETE', `/api/groups/${device.id}`)).status, 200);
    assert.equal((await api('GET', `/api/groups/${device.id}`)).status, 404);
  });

  test("a booting VM joins as a peer in the key's auto_groups, with an IP in the CGNAT range and a DNS name", async () => {
    const device = (await api('POST', '/api/groups', { name: 'device-enroll' })).body;
    const created = await api('POST', '/api/setup-keys', setupKeyBody([device.id]));
    assert.equal(created.status, 200);
    assert.match(created.body.key, /^[0-9A-F-]{36}$/, 'the create answer carries the key in clear');

    const peer = sim.enrollPeer({ setupKey: created.body.key, hostname: 'VM-00042' });
    assert.ok(peer);
    assert.ok(peer.groupIds.includes(device.id));
    assert.match(peer.ip, /^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.\d+\.\d+$/, `${peer.ip} lies in 100.64.0.0/10`);
    assert.equal(peer.dnsLabel, 'vm-00042.netbird.cloud');

    const group = (await api('GET', `/api/groups/${device.id}`)).body;
    assert.equal(group.peers_count, 1);
    assert.deepEqual(group.peers, [{ id: peer.id, name: 'VM-00042' }]);
    const listed = (await api('GET', '/api/peers?name=VM-00042')).body;
    assert.equal(listed.length, 1);
    assert.deepEqual(listed[0].groups.map((g: { name: string }) => g.name).sort(), ['All', 'device-enroll']);

    // Deleting the peer empties its groups but keeps them.
    assert.equal((await api('DELETE', `/api/peers/${peer.id}`)).status, 200);
    const after = (await api('GET', `/api/groups/${device.id}`)).body;
    assert.equal(after.peers_count, 0);
    assert.deepEqual(after.peers, []);
  });

  test('a one-off key works once; revoked, expired-by-use and unknown keys are refused', async () => {
    const key = (await api('POST', '/api/setup-keys', setupKeyBody([]))).body;
    assert.ok(sim.enrollPeer({ setupKey: key.key, hostname: 'once-1' }));
    assert.throws(
      () => sim.enrollPeer({ setupKey: key.key, hostname: 'once-2' }),
      (err) => err instanceof NetbirdEnrollmentError && err.reason === 'overused' && !err.message.includes(key.key),
    );
    const shown = (await api('GET', `/api/setup-keys/${key.id}`)).body;
    assert.equal(shown.state, 'overused');
    assert.equal(shown.valid, false);
    assert.equal(shown.used_times, 1);
    assert.equal(shown.key, `${key.key.slice(0, 5)}****`, 'after creation the key is masked');

    const reusable = (await api('POST', '/api/setup-keys', setupKeyBody([], { type: 'reusable' }))).body;
    assert.ok(sim.enrollPeer({ setupKey: reusable.key, hostname: 'reuse-1' }));
    assert.ok(sim.enrollPeer({ setupKey: reusable.key, hostname: 'reuse-2' }));
    const revoked = await api('PUT', `/api/setup-keys/${reusable.id}`, { revoked: true, auto_groups: [] });
    assert.equal(revoked.body.state, 'revoked');
    assert.throws(() => sim.enrollPeer({ setupKey: reusable.key, hostname: 'reuse-3' }), /revoked/);
    assert.equal((await api('PUT', `/api/setup-keys/${reusable.id}`, { revoked: false, auto_groups: [] })).status, 422);
    assert.throws(
      () => sim.enrollPeer({ setupKey: 'not-a-key', hostname: 'x' }),
      (err) => err instanceof NetbirdEnrollmentError && err.reason === 'unknown',
    );

    const dumped = JSON.stringify(sim.dump());
    assert.ok(!dumped.includes(key.key) && !dumped.includes(reusable.key), 'the dump never holds a key in clear');
  });

  test('with peersNeverRegister a booting VM registers nothing', async () => {
    const key = (await api('POST', '/api/setup-keys', setupKeyBody([], { type: 'reusable' }))).body;
    const before = sim.dump().peers.length;
    sim.faults.set({ peersNeverRegister: true });
    try {
      assert.equal(sim.enrollPeer({ setupKey: key.key, hostname: 'ghost' }), undefined);
    } finally {
      sim.faults.reset();
    }
    assert.equal(sim.dump().peers.length, before);
    assert.equal((await api('GET', `/api/setup-keys/${key.id}`)).body.used_times, 0);
  });

  test('policies keep rules with group sources, destinations, direction, protocol and ports', async () => {
    const a = (await api('POST', '/api/groups', { name: 'pol-src' })).body;
    const b = (await api('POST', '/api/groups', { name: 'pol-dst' })).body;
    const created = (await api('POST', '/api/policies', { name: 'pol', enabled: true, rules: [ruleBody([a.id], [b.id])] })).body;
    const rule = created.rules[0];
    assert.deepEqual([rule.sources[0].id, rule.destinations[0].id, rule.bidirectional, rule.protocol], [a.id, b.id, false, 'tcp']);
    assert.deepEqual(rule.ports, ['22', '443']);

    const icmpWithPorts = await api('PUT', `/api/policies/${created.id}`, {
      name: 'pol',
      enabled: true,
      rules: [{ ...ruleBody([a.id], [b.id]), protocol: 'icmp' }],
    });
    assert.equal(icmpWithPorts.status, 422);
    const updated = await api('PUT', `/api/policies/${created.id}`, {
      name: 'pol',
      enabled: false,
      rules: [{ ...ruleBody([a.id], [b.id]), id: rule.id, bidirectional: true }],
    });
    assert.equal(updated.body.enabled, false);
    assert.equal(updated.body.rules[0].id, rule.id);
    assert.equal(updated.body.rules[0].bidirectional, true);
    assert.equal(
      (await api('GET', '/api/policies')).body.some((p: { id: string }) => p.id === created.id),
      true,
    );
  });

  test('call counts are kept per operation template', async () => {
    const before = sim.callCounts()['GET /api/groups/{groupId}'] ?? 0;
    await api('GET', '/api/groups/abc');
    await api('GET', '/api/groups/def');
    assert.equal(sim.callCounts()['GET /api/groups/{groupId}'], before + 2);
  });

  test("injected 5xx answers carry NetBird's error shape and Retry-After when asked", async () => {
    sim.faults.set({ failNextRequests: 1, failStatus: 429, retryAfterSeconds: 3 });
    const res = await request(`${server.url}/api/groups`, { headers: { authorization: `Token ${TOKEN}` } });
    assert.equal(res.statusCode, 429);
    assert.equal(res.headers['retry-after'], '3');
    assert.equal(((await res.body.json()) as { code: number }).code, 429);
    sim.faults.set({ errorRate5xx: 1 });
    assert.equal((await api('GET', '/api/groups')).status, 503);
    sim.faults.reset();
    assert.equal((await api('GET', '/api/groups')).status, 200);
  });

  test('every response seen by these tests validates against the NetBird spec', async () => {
    assert.ok(exchanges.length > 40, `saw only ${exchanges.length} responses`);
    const templates = new Set(exchanges.filter((e) => e.status === 200).map((e) => `${e.method} ${e.template}`));
    for (const op of ['GET /api/peers', 'GET /api/groups/{groupId}', 'POST /api/policies', 'POST /api/setup-keys', 'GET /api/users']) {
      assert.ok(templates.has(op), `no successful ${op} was checked`);
    }
    const problems = exchanges.flatMap((e) => contract.checkResponse(e.method, e.template, e.status, e.body).map((p) => `${e.method} ${e.template} ${e.status}: ${p}`));
    assert.deepEqual(problems, []);
  });
});

describe('NetBird simulator options', () => {
  test('peers get addresses from a configured network and DNS names in a configured domain', async () => {
    const own = createNetbirdSimulator({ tokens: [TOKEN], users: [], peerNetwork: '10.99.0.0/24', dnsDomain: 'vpn.example.test' });
    const listening = await own.listen({});
    try {
      const res = await request(`${listening.url}/api/setup-keys`, {
        method: 'POST',
        headers: { authorization: `Token ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify(setupKeyBody([], { type: 'reusable' })),
      });
      const key = (await res.body.json()) as { key: string };
      const first = own.enrollPeer({ setupKey: key.key, hostname: 'web' });
      const second = own.enrollPeer({ setupKey: key.key, hostname: 'web' });
      assert.equal(first?.ip, '10.99.0.1');
      assert.equal(second?.ip, '10.99.0.2');
      assert.equal(first?.dnsLabel, 'web.vpn.example.test');
      assert.notEqual(second?.dnsLabel, first?.dnsLabel, 'DNS labels stay unique');
    } finally {
      await listening.close();
    }
  });
});
