import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, beforeEach, describe, test } from 'node:test';
import { Agent, request, type Dispatcher } from 'undici';
import { NetbirdApiError, NetbirdClient } from '../src/clients/netbird';
import { createNetbirdSimulator, type NetbirdListening, type NetbirdSimulator } from '../src/simulators/netbird';

/** The simulated NetBird's faults by class, and the users' own peers with groups propagation. */

const TOKEN = 'nbp_faultsTestToken00000000000000000000';
let sim: NetbirdSimulator;
let server: NetbirdListening;
/** A second client machine with the same token: another source address (loopback holds all of 127/8 on Linux). */
function statusFrom127002(): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${server.url}/api/groups`, { localAddress: '127.0.0.2', headers: { authorization: `Token ${TOKEN}` }, timeout: 5_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

async function get(path = '/api/groups', opts: { dispatcher?: Dispatcher; timeoutMs?: number } = {}) {
  const res = await request(`${server.url}${path}`, {
    headers: { authorization: `Token ${TOKEN}` },
    dispatcher: opts.dispatcher,
    headersTimeout: opts.timeoutMs ?? 5_000,
    bodyTimeout: opts.timeoutMs ?? 5_000,
  });
  return { status: res.statusCode, retryAfter: res.headers['retry-after'], body: (await res.body.json()) as any };
}

async function transportError(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    return (err as { code?: string }).code ?? (err as Error).name;
  }
  assert.fail('the request was answered');
}

before(async () => {
  sim = createNetbirdSimulator({
    tokens: [TOKEN],
    // The account as docs/operations.md prepares it: NetBird's all-to-all Default policy deleted.
    defaultPolicy: false,
    users: [
      { email: 'owner@example.test', name: 'Owner' },
      { email: 'carl@example.test', name: 'Carl' },
    ],
  });
  server = await sim.listen({});
});

beforeEach(() => sim.faults.reset());

after(async () => {
  await server.close();
});

describe('NetBird rate limiter', () => {
  test("per token: the burst passes, then 429 with NetBird's body and Retry-After, without taking a token", async () => {
    sim.faults.set({ rateLimit: { requestsPerSecond: 2, burst: 3 } });
    const answers = [];
    for (let i = 0; i < 6; i++) answers.push(await get());
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 200, 200, 429, 429, 429],
    );
    assert.deepEqual(answers[3]!.body, { message: 'too many requests', code: 429 });
    assert.equal(answers[3]!.retryAfter, '1', 'whole seconds until the bucket holds a token again');

    assert.equal(await statusFrom127002(), 429, "the bucket is the token's, wherever the request comes from");
    const stranger = await request(`${server.url}/api/groups`, { headers: { authorization: 'Token nbp_anotherTokenanotherToken0000000000' } });
    await stranger.body.dump();
    assert.equal(stranger.statusCode, 401, 'another token has a bucket of its own (and is then refused as unknown)');
    const before = sim.callCounts()['GET /api/groups'];
    await new Promise((r) => setTimeout(r, 550));
    assert.equal((await get()).status, 200, 'refilled at the sustained rate: refused requests took no token');
    assert.equal(sim.callCounts()['GET /api/groups'], before! + 1, 'refused requests are counted too');
    sim.faults.set({ rateLimit: undefined });
    for (let i = 0; i < 5; i++) assert.equal((await get()).status, 200);
  });

  test("like NetBird's own middleware it can refuse without Retry-After, and the client then backs off by itself", async () => {
    sim.faults.set({ rateLimit: { requestsPerSecond: 20, burst: 1, retryAfter: false } });
    const first = await get();
    const refused = await get();
    assert.equal(first.status, 200);
    assert.equal(refused.status, 429);
    assert.equal(refused.retryAfter, undefined);

    const waits: number[] = [];
    const client = new NetbirdClient({
      baseUrl: server.url,
      token: TOKEN,
      retry: { baseDelayMs: 40 },
      sleep: async (ms) => {
        waits.push(ms);
        await new Promise((r) => setTimeout(r, ms));
      },
    });
    try {
      assert.ok((await client.listGroups()).length > 0);
      assert.ok(waits.length >= 1 && waits.every((w) => w >= 20 && w <= 5_000), `waited ${waits.join(', ')} ms`);
    } finally {
      await client.close();
    }
  });

  test('a client keeps honouring Retry-After past its 5xx budget, and gives up only after rateLimitedAttempts', async () => {
    sim.faults.set({ failNextRequests: 4, failStatus: 429, retryAfterSeconds: 1 });
    const waits: number[] = [];
    const client = new NetbirdClient({ baseUrl: server.url, token: TOKEN, retry: { attempts: 2, rateLimitedAttempts: 5 }, sleep: async (ms) => void waits.push(ms) });
    try {
      assert.ok(await client.listUsers());
      assert.equal(waits.length, 4);
      assert.ok(
        waits.every((w) => w >= 1_000),
        `every wait honours Retry-After: ${waits.join(', ')}`,
      );
      sim.faults.set({ failNextRequests: 5, failStatus: 429 });
      const err = await client.listUsers().catch((e: unknown) => e);
      assert.ok(err instanceof NetbirdApiError);
      assert.deepEqual([err.status, err.attempts, err.retryable], [429, 5, true]);
    } finally {
      await client.close();
    }
  });
});

describe('NetBird down or silent', () => {
  test('hang: the request is accepted and never answered, or answered only after answerAfterMs', async () => {
    sim.faults.set({ hang: {} });
    const code = await transportError(get('/api/groups', { timeoutMs: 150 }));
    assert.equal(code, 'UND_ERR_HEADERS_TIMEOUT');
    sim.faults.set({ hang: { answerAfterMs: 120 } });
    const started = Date.now();
    assert.equal((await get()).status, 200);
    assert.ok(Date.now() - started >= 100, 'held before answering');
  });

  test("down=unavailable answers every request 503 in NetBird's shape, before authentication", async () => {
    sim.faults.set({ down: 'unavailable' });
    const res = await request(`${server.url}/api/peers`);
    assert.equal(res.statusCode, 503);
    assert.deepEqual(await res.body.json(), { message: 'service unavailable', code: 503 });
    sim.faults.reset();
    assert.equal((await get('/api/peers')).status, 200);
  });

  test('down=reset resets new and kept-alive connections; the client sees no HTTP answer at all', async () => {
    const keptAlive = new Agent({ keepAliveTimeout: 10_000 });
    try {
      assert.equal((await get('/api/groups', { dispatcher: keptAlive })).status, 200);
      sim.faults.set({ down: 'reset' });
      assert.match(await transportError(get('/api/groups', { dispatcher: keptAlive })), /ECONNRESET|UND_ERR_SOCKET/);
      assert.match(await transportError(get()), /ECONNRESET|UND_ERR_SOCKET/);
      const client = new NetbirdClient({ baseUrl: server.url, token: TOKEN, retry: { attempts: 1 } });
      const err = await client.listPeers().catch((e: unknown) => e);
      await client.close();
      assert.ok(err instanceof NetbirdApiError);
      assert.deepEqual([err.status, err.retryable], [undefined, true]);
      sim.faults.reset();
      assert.equal((await get()).status, 200);
    } finally {
      await keptAlive.close();
    }
  });
});

describe("users' own peers and groups propagation", () => {
  test("a user's peer starts in the user's auto_groups and follows later changes to them", async () => {
    const client = new NetbirdClient({ baseUrl: server.url, token: TOKEN });
    try {
      const early = await client.createGroup({ name: 'early' });
      const late = await client.createGroup({ name: 'late' });
      const carl = (await client.listUsers()).find((u) => u.email === 'carl@example.test')!;
      await client.updateUser(carl.id, { role: 'user', is_blocked: false, auto_groups: [early.id] });

      const laptop = sim.enrollUserPeer({ email: 'CARL@example.test', hostname: 'carl-laptop' });
      assert.equal(laptop.userId, carl.id);
      assert.deepEqual(laptop.groupIds.length, 2, 'All and the auto_group');
      assert.ok(laptop.groupIds.includes(early.id));
      assert.equal((await client.getPeer(laptop.id)).user_id, carl.id);

      await client.updateUser(carl.id, { role: 'user', is_blocked: false, auto_groups: [late.id] });
      const groups = (await client.getPeer(laptop.id)).groups.map((g) => g.name).sort();
      assert.deepEqual(groups, ['All', 'late'], 'the added group was propagated, the removed one taken away');
      assert.throws(() => sim.enrollUserPeer({ email: 'nobody@example.test', hostname: 'x' }), /not found/);
    } finally {
      await client.close();
    }
  });

  test('without groups propagation, a change reaches only the peers the user registers afterwards', async () => {
    const own = createNetbirdSimulator({
      tokens: [TOKEN],
      // The account as docs/operations.md prepares it: NetBird's all-to-all Default policy deleted.
      defaultPolicy: false,
      users: [
        { email: 'o@x.test', name: 'O' },
        { email: 'u@x.test', name: 'U' },
      ],
      groupsPropagation: false,
    });
    const listening = await own.listen({});
    const client = new NetbirdClient({ baseUrl: listening.url, token: TOKEN });
    try {
      const group = await client.createGroup({ name: 'g' });
      const before = own.enrollUserPeer({ email: 'u@x.test', hostname: 'before' });
      const user = (await client.listUsers()).find((u) => u.email === 'u@x.test')!;
      await client.updateUser(user.id, { role: 'user', is_blocked: false, auto_groups: [group.id] });
      const afterwards = own.enrollUserPeer({ email: 'u@x.test', hostname: 'after' });
      assert.deepEqual(
        (await client.getGroup(group.id)).peers.map((p) => p.id),
        [afterwards.id],
      );
      assert.ok(!(await client.getPeer(before.id)).groups.some((g) => g.id === group.id));
    } finally {
      await client.close();
      await listening.close();
    }
  });

  test('who may reach whom follows accept rules: one way unless bidirectional, never through a drop rule', async () => {
    const client = new NetbirdClient({ baseUrl: server.url, token: TOKEN });
    try {
      const key = await client.createSetupKey({ name: 'reach', type: 'reusable', expires_in: 86_400, auto_groups: [], usage_limit: 0 });
      const [a, b, c] = ['reach-a', 'reach-b', 'reach-c'].map((hostname) => sim.enrollPeer({ setupKey: key.key, hostname })!.id);
      const ga = await client.createGroup({ name: 'reach-ga', peers: [a!] });
      const gb = await client.createGroup({ name: 'reach-gb', peers: [b!] });
      const gc = await client.createGroup({ name: 'reach-gc', peers: [c!] });
      const rule = { name: 'r', enabled: true, action: 'accept' as const, bidirectional: false, protocol: 'all' as const };
      const oneWay = await client.createPolicy({ name: 'reach-1', enabled: true, rules: [{ ...rule, sources: [ga.id], destinations: [gb.id] }] });
      const dropped = await client.createPolicy({ name: 'reach-2', enabled: true, rules: [{ ...rule, action: 'drop', sources: [gc.id], destinations: [gb.id] }] });
      assert.deepEqual([sim.reachableFrom(a!), sim.reachableFrom(b!), sim.reachableFrom(c!)], [[b], [], []]);
      await client.updatePolicy(oneWay.id, { name: 'reach-1', enabled: true, rules: [{ ...rule, bidirectional: true, sources: [ga.id], destinations: [gb.id] }] });
      assert.deepEqual(sim.reachableFrom(b!), [a]);
      await client.deletePolicy(oneWay.id);
      await client.deletePolicy(dropped.id);
      assert.deepEqual(sim.reachableFrom(a!), []);
    } finally {
      await client.close();
    }
  });
});
