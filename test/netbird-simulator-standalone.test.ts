import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import { Agent, fetch } from 'undici';

/**
 * `npm run sim:netbird` as a user runs it: HTTPS with its own CA written out, the printed personal access token,
 * machines joining through the control endpoint, and NetBird's own Go REST client (v0.77.1, built by
 * `npm run tools:clients` into .tools/bin) driven through pveflow's provisioning flow against it.
 */
const root = resolve(__dirname, '..');
const goClient = join(root, '.tools', 'bin', 'netbird-rest-flow');
let child: ChildProcess;
let dir: string;
let out = '';
let ready: { url: string; caFile: string; token: string; controlToken: string; pid: number };
let agent: Agent;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'netbird-sim-standalone-'));
  child = spawn(process.execPath, ['--import', 'tsx', join(root, 'src/simulators/netbird/standalone.ts'), '--port', '0', '--dir', dir, '--user', 'olga@owner.example:Olga Owner', '--user', 'alice@consultancy.example'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  ready = await new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`standalone did not start: ${out}`)), 30_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /^NETBIRD_SIM_READY (.+)$/m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolvePromise(JSON.parse(m[1]!) as typeof ready);
      }
    });
    child.once('exit', (code) => reject(new Error(`standalone exited with ${code}: ${out}`)));
  });
  agent = new Agent({ connect: { ca: readFileSync(ready.caFile, 'utf8') } });
});

after(async () => {
  await agent?.close();
  child?.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
});

const call = (method: string, path: string, auth: string, body?: unknown) =>
  fetch(`${ready.url}${path}`, {
    method,
    dispatcher: agent,
    signal: AbortSignal.timeout(10_000),
    headers: { authorization: auth, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

test('prints its URL, CA file and token; the token acts as the first user, the owner', async () => {
  assert.match(out, new RegExp(`^NetBird management simulator: ${ready.url}/api `, 'm'));
  assert.match(out, new RegExp(`^CA certificate: ${ready.caFile}$`, 'm'));
  assert.match(out, new RegExp(`^Personal access token: Authorization: Token ${ready.token}$`, 'm'));
  assert.ok(existsSync(ready.caFile));
  const me = await call('GET', '/api/users/current', `Token ${ready.token}`);
  assert.equal(me.status, 200);
  const user = (await me.json()) as { email: string; role: string; is_current: boolean };
  assert.deepEqual([user.email, user.role, user.is_current], ['olga@owner.example', 'owner', true]);
  const users = (await (await call('GET', '/api/users', `Token ${ready.token}`)).json()) as { email: string; name: string }[];
  assert.deepEqual(
    users.map((u) => [u.email, u.name]),
    [
      ['olga@owner.example', 'Olga Owner'],
      ['alice@consultancy.example', 'alice'],
    ],
  );
  assert.equal((await call('GET', '/api/users/current', 'Token nbp_wrong')).status, 401);
});

test('a machine joins through the control endpoint with a setup key; the control endpoint wants its own token', async () => {
  const group = (await (await call('POST', '/api/groups', `Token ${ready.token}`, { name: 'devices' })).json()) as { id: string };
  const key = (await (
    await call('POST', '/api/setup-keys', `Token ${ready.token}`, {
      name: 'vm',
      type: 'one-off',
      expires_in: 86_400,
      auto_groups: [group.id],
      usage_limit: 1,
    })
  ).json()) as { key: string };
  assert.equal((await call('POST', '/_sim/peers', `Token ${ready.token}`, { setup_key: key.key, hostname: 'vm-1' })).status, 401);
  const joined = await call('POST', '/_sim/peers', `Bearer ${ready.controlToken}`, { setup_key: key.key, hostname: 'vm-1' });
  assert.equal(joined.status, 200);
  const peer = ((await joined.json()) as { data: { id: string; groupIds: string[] } }).data;
  assert.ok(peer.groupIds.includes(group.id));
  const again = await call('POST', '/_sim/peers', `Bearer ${ready.controlToken}`, { setup_key: key.key, hostname: 'vm-2' });
  assert.equal(again.status, 409, 'a one-off key is used up');
  assert.equal(((await again.json()) as { reason: string }).reason, 'overused');
  const listed = (await (await call('GET', '/api/peers', `Token ${ready.token}`)).json()) as { id: string }[];
  assert.deepEqual(
    listed.map((p) => p.id),
    [peer.id],
  );
  assert.equal((await call('DELETE', `/api/peers/${peer.id}`, `Token ${ready.token}`)).status, 200);
});

function toolOrSkip(t: TestContext, path: string, what: string): boolean {
  if (existsSync(path)) return true;
  const why = `${what} is not installed (${path}); run 'npm run tools:clients' (needs go)`;
  if (process.env.CI) assert.fail(why);
  t.skip(why);
  return false;
}

test("NetBird's own Go REST client provisions and cleans up: groups, setup key, users, join, policy, accessible peers", (t) => {
  if (!toolOrSkip(t, goClient, "NetBird's Go REST client")) return;
  const r = spawnSync(goClient, [], {
    encoding: 'utf8',
    timeout: 120_000,
    env: {
      PATH: process.env.PATH,
      NETBIRD_API_URL: ready.url,
      NETBIRD_TOKEN: ready.token,
      NETBIRD_CA_FILE: ready.caFile,
      NETBIRD_SIM_CONTROL_URL: `${ready.url}/_sim`,
      NETBIRD_SIM_CONTROL_TOKEN: ready.controlToken,
    },
  });
  assert.equal(r.status, 0, `netbird-rest-flow failed:\n${r.stdout}${r.stderr}`);
  for (const step of ['users/current', 'accounts', 'routes', 'groups', 'setup-keys refused', 'setup-keys', 'users', 'join vm', 'join laptop', 'peers', 'policies', 'accessible-peers', 'cleanup']) {
    assert.match(r.stdout, new RegExp(`^ok ${step} `, 'm'), step);
  }
  assert.match(r.stdout, /^ok setup-keys refused usage_limit 5 is not valid for a one-off setup key/m);
  assert.match(r.stdout, /^FLOW_OK$/m);
});

test('the Go client leaves nothing behind: only what the test before it made remains', async () => {
  const state = (await (await call('GET', '/_sim/state', `Bearer ${ready.controlToken}`)).json()) as {
    data: { users: { email: string }[]; peers: unknown[]; policies: { name: string }[]; setupKeys: { name: string }[]; groups: { name: string }[] };
  };
  assert.deepEqual(
    state.data.users.map((u) => u.email),
    ['olga@owner.example', 'alice@consultancy.example'],
  );
  assert.deepEqual(state.data.peers, []);
  // A new account's own policy, which the Go client's flow leaves alone.
  assert.deepEqual(
    state.data.policies.map((p) => p.name),
    ['Default'],
  );
  assert.deepEqual(state.data.groups.map((g) => g.name).sort(), ['All', 'devices']);
  assert.deepEqual(
    state.data.setupKeys.map((k) => k.name),
    ['vm'],
  );
});
