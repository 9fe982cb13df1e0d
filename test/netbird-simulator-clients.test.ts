import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { createNetbirdSimulator, loadNetbirdContract, type NetbirdExchange, type NetbirdListening, type NetbirdSimulator } from '../src/simulators/netbird';

/**
 * What NetBird's own clients (its Go REST client, the Terraform provider) call beyond pveflow's own requests:
 * users (create, current, delete), accounts, routes, a peer's accessible peers; and the setup-key rules of v0.77.1's
 * handler. Every answer in this file is held against the spec's response schemas at the end.
 */
const TOKEN = 'nbp_clientsTestToken00000000000000000';
const contract = loadNetbirdContract();
const exchanges: NetbirdExchange[] = [];
let sim: NetbirdSimulator;
let server: NetbirdListening;

async function api(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await request(`${server.url}${path}`, {
    method: method as 'GET',
    headers: { authorization: `Token ${TOKEN}`, ...(body !== undefined && { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
    headersTimeout: 5_000,
    bodyTimeout: 5_000,
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, body: JSON.parse(text) as any };
}

before(async () => {
  sim = createNetbirdSimulator({
    tokens: [TOKEN],
    // The account as docs/operations.md prepares it: NetBird's all-to-all Default policy deleted.
    defaultPolicy: false,
    users: [
      { email: 'owner@example.test', name: 'Olga Owner' },
      { email: 'carl@consultancy.example', name: 'Carl Consultant', role: 'user' },
    ],
    onExchange: (e) => exchanges.push(e),
  });
  server = await sim.listen({});
});
after(() => server.close());

describe('users', () => {
  test("current: the token's user, with what its role may do", async () => {
    const me = await api('GET', '/api/users/current');
    assert.equal(me.status, 200);
    assert.equal(me.body.email, 'owner@example.test');
    assert.equal(me.body.role, 'owner');
    assert.equal(me.body.is_current, true);
    assert.equal(me.body.permissions.is_restricted, false);
    assert.deepEqual(me.body.permissions.modules.setup_keys, { read: true, create: true, update: true, delete: true });
  });

  test('a service user is active at once; a user made in the built-in IdP too, with its password in this answer alone; both listed, filtered by service_user', async () => {
    const bot = await api('POST', '/api/users', { name: 'provisioner', role: 'admin', auto_groups: [], is_service_user: true });
    assert.equal(bot.status, 200);
    assert.deepEqual([bot.body.is_service_user, bot.body.status, bot.body.email, bot.body.is_current], [true, 'active', '', false]);
    assert.match(bot.body.id, /^[0-9a-f-]{36}$/);
    const invited = await api('POST', '/api/users', { email: 'dana@consultancy.example', name: 'Dana', role: 'user', auto_groups: [], is_service_user: false });
    assert.equal(invited.status, 200);
    assert.deepEqual([invited.body.status, invited.body.is_service_user], ['active', false]);
    // Dex's encoded id ({uuid, connector `local`}) and its generated password, as v0.77.1's built-in IdP answers.
    const dexId = Buffer.from(invited.body.id, 'base64');
    assert.deepEqual([dexId[0], dexId[1], dexId.subarray(38).toString('latin1')], [0x0a, 36, '\x12\x05local']);
    assert.match(dexId.subarray(2, 38).toString('latin1'), /^[0-9a-f-]{36}$/);
    assert.equal(invited.body.password.length, 16);

    const services = await api('GET', '/api/users?service_user=true');
    assert.deepEqual(
      services.body.map((u: { id: string }) => u.id),
      [bot.body.id],
    );
    const humans = await api('GET', '/api/users?service_user=false');
    assert.deepEqual(
      humans.body.map((u: { email: string }) => u.email),
      ['owner@example.test', 'carl@consultancy.example', 'dana@consultancy.example'],
    );
    assert.equal((await api('GET', '/api/users')).body.length, 4);
    assert.equal(
      humans.body.some((u: { password?: string }) => 'password' in u),
      false,
    );
    assert.equal((await api('GET', '/api/users?service_user=maybe')).status, 422);
  });

  test('creation refused as NetBird refuses it: unknown role, owner, no email, an email already in the account', async () => {
    const cases: Array<[unknown, number, string]> = [
      [{ name: 'x', role: 'superuser', auto_groups: [], is_service_user: true }, 422, 'unknown user role superuser'],
      [{ name: 'x', role: 'owner', auto_groups: [], is_service_user: true }, 422, "can't create a service user with owner role"],
      [{ name: 'x', role: 'user', auto_groups: [], is_service_user: false }, 422, "email can't be empty"],
      [{ email: 'e@x.example', role: 'user', auto_groups: [], is_service_user: false }, 422, "name can't be empty"],
      [{ email: 'e@x.example', name: 'E', role: 'owner', auto_groups: [], is_service_user: false }, 422, "can't invite a user with owner role"],
      [{ email: 'CARL@consultancy.example', name: 'C', role: 'user', auto_groups: [], is_service_user: false }, 409, "can't invite a user with an existing netbird account"],
    ];
    const before = sim.dump().users.length;
    for (const [body, status, message] of cases) {
      const r = await api('POST', '/api/users', body);
      assert.deepEqual([r.status, r.body.message], [status, message], JSON.stringify(body));
    }
    assert.equal(sim.dump().users.length, before, 'nothing was created');
  });

  test("delete: never oneself, never the owner; a deleted user's machines leave with them", async () => {
    const me = (await api('GET', '/api/users/current')).body;
    assert.deepEqual(await api('DELETE', `/api/users/${me.id}`).then((r) => [r.status, r.body.message]), [422, 'self deletion is not allowed']);
    const carl = sim.dump().users.find((u) => u.email === 'carl@consultancy.example')!;
    const laptop = sim.enrollUserPeer({ email: carl.email, hostname: 'carl-laptop' });
    assert.equal((await api('DELETE', `/api/users/${carl.id}`)).status, 200);
    assert.equal((await api('GET', `/api/peers/${laptop.id}`)).status, 404);
    assert.equal((await api('DELETE', `/api/users/${carl.id}`)).status, 404);

    // A token of an admin (the first owner-or-admin user holds the tokens) meets the owner it may not delete.
    const other = createNetbirdSimulator({
      tokens: [TOKEN],
      // The account as docs/operations.md prepares it: NetBird's all-to-all Default policy deleted.
      defaultPolicy: false,
      users: [
        { email: 'ada@example.test', name: 'Ada Admin', role: 'admin' },
        { email: 'olga@example.test', name: 'Olga', role: 'owner' },
      ],
    });
    const listening = await other.listen({});
    try {
      const owner = other.dump().users.find((u) => u.role === 'owner')!;
      const r = await request(`${listening.url}/api/users/${owner.id}`, { method: 'DELETE', headers: { authorization: `Token ${TOKEN}` } });
      assert.deepEqual([r.statusCode, ((await r.body.json()) as { message: string }).message], [403, "can't delete a user with the owner role"]);
    } finally {
      await listening.close();
    }
  });
});

describe('account, routes, accessible peers', () => {
  test('accounts: the one account, with its network and the owner as creator', async () => {
    const r = await api('GET', '/api/accounts');
    assert.equal(r.status, 200);
    assert.equal(r.body.length, 1);
    const [account] = r.body;
    const owner = sim.dump().users.find((u) => u.role === 'owner')!;
    assert.deepEqual([account.created_by, account.domain, account.settings.network_range, account.settings.dns_domain], [owner.id, 'example.test', '100.64.0.0/10', 'netbird.cloud']);
  });

  test('routes: the simulated account has none', async () => {
    const r = await api('GET', '/api/routes');
    assert.deepEqual([r.status, r.body], [200, []]);
  });

  test('accessible peers: the network map, both sides of an enabled rule whatever its direction', async () => {
    const devices = (await api('POST', '/api/groups', { name: 'devices' })).body;
    const team = (await api('POST', '/api/groups', { name: 'team' })).body;
    const key = (await api('POST', '/api/setup-keys', { name: 'k', type: 'reusable', expires_in: 86_400, auto_groups: [devices.id], usage_limit: 0 })).body;
    const vm = sim.enrollPeer({ setupKey: key.key, hostname: 'vm-1' })!;
    const other = sim.enrollPeer({ setupKey: key.key, hostname: 'vm-2' })!;
    const teamKey = (await api('POST', '/api/setup-keys', { name: 't', type: 'reusable', expires_in: 86_400, auto_groups: [team.id], usage_limit: 0 })).body;
    const laptop = sim.enrollPeer({ setupKey: teamKey.key, hostname: 'laptop' })!;
    const ids = async (peer: string) => (await api('GET', `/api/peers/${peer}/accessible-peers`)).body.map((p: { id: string }) => p.id).sort();

    assert.deepEqual(await ids(laptop.id), [], 'no policy, no map');
    const policy = (
      await api('POST', '/api/policies', {
        name: 'team to devices',
        enabled: true,
        rules: [{ name: 'r', enabled: true, action: 'accept', bidirectional: false, protocol: 'tcp', ports: ['22'], sources: [team.id], destinations: [devices.id] }],
      })
    ).body;
    assert.deepEqual(await ids(laptop.id), [vm.id, other.id].sort());
    assert.deepEqual(await ids(vm.id), [laptop.id], 'the destination sees its source too; vm-2 is no peer of vm-1');
    const entry = (await api('GET', `/api/peers/${vm.id}/accessible-peers`)).body[0];
    assert.deepEqual([entry.name, entry.ip, entry.dns_label, entry.user_id], ['laptop', laptop.ip, laptop.dnsLabel, '']);

    await api('PUT', `/api/policies/${policy.id}`, {
      name: 'team to devices',
      enabled: false,
      rules: [{ name: 'r', enabled: true, action: 'accept', bidirectional: false, protocol: 'tcp', ports: ['22'], sources: [team.id], destinations: [devices.id] }],
    });
    assert.deepEqual(await ids(laptop.id), [], 'a disabled policy connects nobody');
    const unknown = await api('GET', '/api/peers/nope/accessible-peers');
    assert.deepEqual([unknown.status, unknown.body], [200, []], 'NetBird computes an empty map for an unknown peer');
  });
});

describe('setup keys as v0.77.1 enforces them', () => {
  const body = (extra: Record<string, unknown>) => ({ name: 'key', type: 'one-off', expires_in: 86_400, auto_groups: [], usage_limit: 0, ...extra });

  test("a one-off key with a usage limit above 1 is refused with 422 and NetBird's words; nothing is created", async () => {
    const before = sim.dump().setupKeys.length;
    const r = await api('POST', '/api/setup-keys', body({ usage_limit: 5 }));
    assert.equal(r.status, 422);
    assert.equal(r.body.message, 'usage_limit 5 is not valid for a one-off setup key, which can be used once; use type reusable for a key that can be used more than once');
    assert.equal(sim.dump().setupKeys.length, before);
  });

  test('a one-off key with usage_limit 0 or 1 is a key for one use; a reusable one keeps its limit', async () => {
    for (const limit of [0, 1]) {
      const r = await api('POST', '/api/setup-keys', body({ usage_limit: limit }));
      assert.deepEqual([r.status, r.body.usage_limit, r.body.type], [200, 1, 'one-off']);
    }
    const reusable = await api('POST', '/api/setup-keys', body({ type: 'reusable', usage_limit: 5 }));
    assert.deepEqual([reusable.status, reusable.body.usage_limit], [200, 5]);
  });

  test('auto groups that do not exist, or All, are refused with the wrapped, lower-cased text', async () => {
    const missing = await api('POST', '/api/setup-keys', body({ auto_groups: ['cnotagroup00000000000'] }));
    assert.deepEqual([missing.status, missing.body.message], [422, 'invalid auto groups: group not found: cnotagroup00000000000']);
    const all = sim.dump().groups.find((g) => g.name === 'All')!;
    const withAll = await api('POST', '/api/setup-keys', body({ auto_groups: [all.id] }));
    assert.deepEqual([withAll.status, withAll.body.message], [422, "invalid auto groups: can't add 'all' group to the setup key"]);
    const key = (await api('POST', '/api/setup-keys', body({}))).body;
    const update = await api('PUT', `/api/setup-keys/${key.id}`, { revoked: false, auto_groups: [all.id] });
    assert.equal(update.status, 422);
  });
});

test('the management API never compresses, even when asked to', async () => {
  for (let i = 0; i < 20; i++) await api('POST', '/api/groups', { name: `bulk-${i}-${'x'.repeat(40)}` });
  const r = await api('GET', '/api/groups', undefined, { 'accept-encoding': 'gzip, deflate, br' });
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-encoding'], undefined);
  assert.ok(JSON.stringify(r.body).length > 1024, 'a body large enough that a compressing server would compress it');
});

test("every answer in this file matches the spec's response schema", () => {
  assert.ok(exchanges.length > 30);
  const problems = exchanges.flatMap((e) => contract.checkResponse(e.method, e.template, e.status, e.body).map((p) => `${e.method} ${e.template} ${e.status}: ${p}`));
  assert.deepEqual(problems, []);
});
