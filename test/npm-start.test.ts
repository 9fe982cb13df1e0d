import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { hashApiKey } from '../src/api/auth/apiKeys';
import { referencePath } from '../src/reference';
import { requireTemporalBinary } from '../src/temporal/binaries';
import { freePort } from './support/ports';
import { waitFor } from './support/waitFor';

/** `npm start` as a person runs it: it says where everything is, serves, and Ctrl-C stops all of it. */
test('npm start prints where everything is, serves the API, and SIGINT stops every part', { skip: !referencePath('pve-api-schema.json') && !process.env.CI && 'reference data absent' }, async () => {
  requireTemporalBinary('temporal');
  const dataDir = mkdtempSync(join(tmpdir(), 'pveflow-start-'));
  const ports = { temporal: await freePort(), ui: await freePort(), api: await freePort(), pve: await freePort(), netbird: await freePort() };
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: resolve(__dirname, '..'),
    env: {
      PATH: process.env.PATH,
      DATA_DIR: dataDir,
      TEMPORAL_PORT: String(ports.temporal),
      TEMPORAL_UI_PORT: String(ports.ui),
      API_PORT: String(ports.api),
      SIM_PVE_PORT: String(ports.pve),
      SIM_NETBIRD_PORT: String(ports.netbird),
      SIM_TIMING: 'fast',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((ok) => child.once('exit', (code) => ok(code)));
  try {
    await waitFor('the start banner', async () => (out.includes('pveflow is running') ? true : undefined), 120_000);
    for (const [what, port] of Object.entries(ports)) {
      assert.ok(out.includes(`:${port}`), `the banner shows the ${what} port ${port}:\n${out}`);
    }
    assert.match(out, /Proxmox VE \(simulated\)/);
    assert.match(out, /Ctrl-C stops everything/);
    const health = await fetch(`http://127.0.0.1:${ports.api}/readyz`);
    assert.equal(health.status, 200);

    // No keys configured: the API is not left open. An operator key is created, shown once, and kept only hashed.
    const apiKey = /operator API key \(shown only this once\): (pvf_[A-Za-z0-9_-]{43})\n/.exec(out)?.[1];
    assert.ok(apiKey, `the start prints the operator API key it created:\n${out}`);
    const keysFile = readFileSync(join(dataDir, 'api-keys.json'), 'utf8');
    assert.ok(!keysFile.includes(apiKey), 'the key file holds no clear key');
    assert.ok(keysFile.includes(hashApiKey(apiKey)), 'the key file holds its hash');
    assert.equal(statSync(join(dataDir, 'api-keys.json')).mode & 0o777, 0o600, 'only its owner reads the key file');
    const list = `http://127.0.0.1:${ports.api}/api/device_requests`;
    assert.equal((await fetch(list)).status, 401);
    assert.equal((await fetch(list, { headers: { authorization: `Bearer ${apiKey}` } })).status, 200);
    const ui = await fetch(`http://127.0.0.1:${ports.ui}/`);
    assert.equal(ui.status, 200, 'Temporal UI answers');

    child.kill('SIGINT');
    const code = await Promise.race([exited, new Promise((_, fail) => setTimeout(() => fail(new Error(`no exit after SIGINT:\n${out}`)), 60_000))]);
    assert.equal(code, 0, out);
    assert.match(out, /stopped/);
    for (const [what, port] of Object.entries(ports)) {
      assert.equal(await accepts(port), false, `${what} port ${port} still open after stop`);
    }
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  }
});

function accepts(port: number): Promise<boolean> {
  return new Promise((ok) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      ok(true);
    });
    s.once('error', () => ok(false));
  });
}
