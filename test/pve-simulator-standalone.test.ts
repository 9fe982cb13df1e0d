import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { Agent, fetch } from 'undici';

/**
 * `npm run sim:pve` as a user runs it: HTTPS with its own CA written out, the seed file's cluster, printed tokens,
 * the control endpoint, and the state dump on SIGUSR2.
 */
const root = resolve(__dirname, '..');
let child: ChildProcess;
let dir: string;
let ready: { url: string; caFile: string; tokens: Record<string, string>; controlToken: string; pid: number };
let agent: Agent;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pve-sim-standalone-'));
  child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(root, 'src/simulators/pve/standalone.ts'),
      '--port',
      '0',
      '--seed',
      join(root, 'src/simulators/pve/seeds/three-nodes.json'),
      '--dir',
      dir,
      '--state-out',
      join(dir, 'state.json'),
      '--timing',
      'zero',
    ],
    { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  ready = await new Promise((resolvePromise, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`standalone did not start: ${out}`)), 30_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /^PVE_SIM_READY (.+)$/m.exec(out);
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

const get = (path: string, auth: string) => fetch(`${ready.url}${path}`, { headers: { authorization: auth }, dispatcher: agent, signal: AbortSignal.timeout(10_000) });

test('serves the seed cluster over HTTPS trusted through the written CA, with the printed (generated) token', async () => {
  assert.ok(existsSync(ready.caFile));
  const secret = ready.tokens['root@pam!sim']!;
  assert.match(secret, /^[0-9a-f-]{36}$/, 'a token without a secret in the seed gets a generated one');
  const res = await get('/cluster/resources?type=vm', `PVEAPIToken=root@pam!sim=${secret}`);
  assert.equal(res.status, 200);
  const vms = ((await res.json()) as { data: { vmid: number; node: string }[] }).data;
  assert.deepEqual(vms.map((v) => [v.vmid, v.node]).sort(), [
    [101, 'pve2'],
    [102, 'pve3'],
    [9000, 'pve1'],
  ]);
});

test('the control endpoint takes faults; SIGUSR2 writes the state file', async () => {
  const origin = new URL(ready.url).origin;
  const set = await fetch(`${origin}/_sim/faults`, {
    method: 'POST',
    dispatcher: agent,
    signal: AbortSignal.timeout(10_000),
    headers: { authorization: `Bearer ${ready.controlToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ nodeOffline: { node: 'pve3', error: 'refused' } }),
  });
  assert.equal(set.status, 200);
  const down = await get('/nodes/pve3/status', `PVEAPIToken=root@pam!sim=${ready.tokens['root@pam!sim']}`);
  assert.equal(down.status, 595);
  assert.equal(down.statusText, 'Connection refused');
  process.kill(ready.pid, 'SIGUSR2');
  const file = join(dir, 'state.json');
  for (let i = 0; i < 100 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 50));
  const state = JSON.parse(readFileSync(file, 'utf8')) as { nodes: { node: string; status: string }[] };
  assert.deepEqual(
    state.nodes.find((n) => n.node === 'pve3'),
    { node: 'pve3', status: 'offline' },
  );
});
