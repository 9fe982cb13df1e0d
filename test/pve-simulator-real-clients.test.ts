import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import { Agent, fetch } from 'undici';

/**
 * Established Proxmox clients provision a VM against `npm run sim:pve` with the pool-scoped token pveflow itself
 * uses: next free id, linked clone, `net0` without a MAC (the simulator generates one, as Proxmox does), start, the
 * guest agent's osinfo/host name/interfaces, stop, delete. proxmoxer (PyPI, in the .tools venv) runs
 * test/clients/proxmoxer/flow.py; go-proxmox runs test/clients/go-proxmox (built into .tools/bin). Both are
 * installed by `npm run tools:clients` and exit non-zero at the first wrong answer.
 */
const root = resolve(__dirname, '..');
const python = join(root, '.tools', 'bin', 'python');
const goProxmox = join(root, '.tools', 'bin', 'go-proxmox-flow');
const TOKEN_ID = 'pveflow@pve!automation';
let child: ChildProcess;
let dir: string;
let ready: { url: string; caFile: string; tokens: Record<string, string>; controlToken: string };
let agent: Agent;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pve-sim-proxmoxer-'));
  child = spawn(process.execPath, ['--import', 'tsx', join(root, 'src/simulators/pve/standalone.ts'), '--port', '0', '--dir', dir, '--timing', 'zero'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  ready = await new Promise((resolvePromise, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`sim:pve did not start: ${out}`)), 30_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /^PVE_SIM_READY (.+)$/m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolvePromise(JSON.parse(m[1]!) as typeof ready);
      }
    });
    child.once('exit', (code) => reject(new Error(`sim:pve exited with ${code}: ${out}`)));
  });
  agent = new Agent({ connect: { ca: readFileSync(ready.caFile, 'utf8') } });
});

after(async () => {
  await agent?.close();
  child?.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
});

/** A missing client fails in CI and skips elsewhere, saying how to install it. */
function installedOrSkip(t: TestContext, found: boolean, why: string): boolean {
  if (found) return true;
  if (process.env.CI) assert.fail(why);
  t.skip(why);
  return false;
}

const proxmoxerOrSkip = (t: TestContext) =>
  installedOrSkip(t, existsSync(python) && spawnSync(python, ['-c', 'import proxmoxer'], { stdio: 'ignore' }).status === 0, `proxmoxer is not installed in ${python}; run 'npm run tools:clients' (needs python3)`);

/** Only the template is left: what a flow made is gone again, by the simulator's own state (not the client's word). */
async function onlyTheTemplateLeft(): Promise<void> {
  const state = await fetch(`${new URL(ready.url).origin}/_sim/state`, {
    headers: { authorization: `Bearer ${ready.controlToken}` },
    dispatcher: agent,
    signal: AbortSignal.timeout(10_000),
  });
  const vms = ((await state.json()) as { data: { vms: { vmid: number }[] } }).data.vms.map((v) => v.vmid);
  assert.deepEqual(vms, [9000]);
}

test('proxmoxer clones, configures a NIC without a MAC, starts, reads the agent, stops and deletes a VM', async (t) => {
  if (!proxmoxerOrSkip(t)) return;
  const r = spawnSync(python, [join(root, 'test/clients/proxmoxer/flow.py')], {
    encoding: 'utf8',
    timeout: 120_000,
    env: {
      PATH: process.env.PATH,
      PVE_HOST: new URL(ready.url).host,
      PVE_TOKEN_ID: TOKEN_ID,
      PVE_TOKEN_SECRET: ready.tokens[TOKEN_ID],
      PVE_CA_FILE: ready.caFile,
      PVE_POOL: 'pveflow',
    },
  });
  assert.equal(r.status, 0, `flow.py failed:\n${r.stdout}${r.stderr}`);
  for (const step of ['version', 'cluster/status', 'clone', 'config', 'start', 'agent', 'stop', 'delete']) {
    assert.match(r.stdout, new RegExp(`^ok ${step}`, 'm'), step);
  }
  assert.match(r.stdout, /^ok config virtio=BC:24:11:[0-9A-F:]{8},bridge=vmbr0$/m);
  assert.match(r.stdout, /^FLOW_OK$/m);
  await onlyTheTemplateLeft();
});

test('go-proxmox clones to the next free id (asking /cluster/status first), waits for the agent by osinfo, and cleans up', async (t) => {
  if (!installedOrSkip(t, existsSync(goProxmox), `go-proxmox-flow is not built (${goProxmox}); run 'npm run tools:clients' (needs go)`)) return;
  const r = spawnSync(goProxmox, [], {
    encoding: 'utf8',
    timeout: 120_000,
    env: {
      PATH: process.env.PATH,
      PVE_API_URL: ready.url,
      PVE_TOKEN_ID: TOKEN_ID,
      PVE_TOKEN_SECRET: ready.tokens[TOKEN_ID],
      PVE_CA_FILE: ready.caFile,
      PVE_POOL: 'pveflow',
    },
  });
  assert.equal(r.status, 0, `go-proxmox-flow failed:\n${r.stdout}${r.stderr}`);
  for (const step of ['version', 'cluster/status', 'clone', 'config', 'start', 'agent', 'stop', 'delete']) {
    assert.match(r.stdout, new RegExp(`^ok ${step}`, 'm'), step);
  }
  assert.match(r.stdout, /^ok config virtio=BC:24:11:[0-9A-F:]{8},bridge=vmbr0$/m);
  assert.match(r.stdout, /^FLOW_OK$/m);
  await onlyTheTemplateLeft();
});
