import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { Agent, fetch as undiciFetch } from 'undici';
import { hashApiKey } from '../src/api/auth/apiKeys';
import { readWorldAccessFile } from '../src/simulators/inspection';
import { requireTemporalBinary } from '../src/temporal/binaries';
import { pveflow } from './support/cliRunner';
import { freePort } from './support/ports';
import { waitFor } from './support/waitFor';

const root = resolve(__dirname, '..');
const dataDir = mkdtempSync(join(tmpdir(), 'pveflow-start-'));
after(() => rmSync(dataDir, { recursive: true, force: true }));

/** A stack trace in the output: the lines Node prints under an error (`    at fn (file:line:col)`). */
const STACK_FRAME = /^\s+at .+[:(]/m;

interface Started {
  out(): string;
  ports: Record<'temporal' | 'ui' | 'api' | 'pve' | 'netbird', number>;
  /** Sends the signal, waits for the exit; its code. */
  stop(signal: NodeJS.Signals): Promise<number | null>;
  kill(): void;
}

/** `npm start` (its script: tsx src/main.ts) on `dataDir`, waited for until its banner is printed. */
async function npmStart(extraArgs: string[] = []): Promise<Started> {
  requireTemporalBinary('temporal');
  const ports = { temporal: await freePort(), ui: await freePort(), api: await freePort(), pve: await freePort(), netbird: await freePort() };
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...extraArgs], {
    cwd: root,
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
  const started: Started = {
    out: () => out,
    ports,
    async stop(signal) {
      child.kill(signal);
      return Promise.race([exited, new Promise<never>((_, fail) => setTimeout(() => fail(new Error(`no exit after ${signal}:\n${out}`)), 60_000))]);
    },
    kill: () => void (child.exitCode === null && child.kill('SIGKILL')),
  };
  try {
    await waitFor(
      'the start banner',
      async () => {
        if (child.exitCode !== null) throw new Error(`npm start exited with ${child.exitCode}:\n${out}`);
        return out.includes('Ctrl-C stops everything') ? true : undefined;
      },
      120_000,
    );
  } catch (err) {
    started.kill();
    throw err;
  }
  return started;
}

/** `npm start` as a person runs it: it says where everything is, serves, and Ctrl-C stops all of it. */
test('npm start prints where everything is, serves the API, and SIGINT stops every part', async () => {
  const started = await npmStart();
  const { ports } = started;
  try {
    const out = started.out();
    for (const [what, port] of Object.entries(ports)) {
      assert.ok(out.includes(`:${port}`), `the banner shows the ${what} port ${port}:\n${out}`);
    }
    assert.match(out, /Proxmox VE \(simulated\)  https:\/\//, 'a label and its address never run together');
    for (const label of ['API', 'Web console', 'Webhook', 'Temporal UI', 'Temporal', 'SFTP to nodes', 'NetBird (simulated)', 'Simulated world', 'Metrics', 'Data']) {
      assert.match(out, new RegExp(`^  ${label.replace(/[()]/g, '\\$&')} +\\S`, 'm'), `the banner has a line for ${label}`);
    }
    assert.match(out, /Webhook +http:\/\/\S+\/api\/hooks\/device_requests +off: set WEBHOOK_SECRET/, 'the banner says the webhook is off and how to turn it on');
    assert.match(out, /Ctrl-C stops everything/);
    assert.doesNotMatch(out, /webpack|workflow-bundle-|modules by path/, "the bundler's report is debug output");
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
    // Temporal UI, behind pveflow's gateway: the sign-in page for anyone, the UI itself for operators only.
    assert.equal((await fetch(`http://127.0.0.1:${ports.ui}/pveflow/sign-in`)).status, 200, 'the Temporal UI gateway answers');
    assert.equal((await fetch(`http://127.0.0.1:${ports.ui}/api/v1/settings`)).status, 401, 'the UI needs an operator session');

    // The simulated world's credentials: one file, named by the banner, only for its owner, and enough for a person
    // (the pool token and the root token against the simulated Proxmox) and for `pveflow doctor` with no settings.
    const accessFile = join(dataDir, 'sim', 'credentials.env');
    assert.ok(out.includes(accessFile), `the banner names ${accessFile}:\n${out}`);
    assert.equal(statSync(accessFile).mode & 0o777, 0o600, 'only its owner reads the credentials file');
    const access = readWorldAccessFile(accessFile)!;
    assert.equal(access.PVE_ENDPOINT, `https://127.0.0.1:${ports.pve}`);
    assert.equal(access.NETBIRD_API_URL, `https://127.0.0.1:${ports.netbird}`);
    assert.match(access.SSH_HOST_FINGERPRINTS!, /^pve1=SHA256:\S+,pve2=SHA256:\S+,pve3=SHA256:\S+$/);
    const ca = new Agent({ connect: { ca: readFileSync(access.PVE_CA_FILE!) } });
    try {
      for (const [id, secret] of [
        [access.PVE_TOKEN_ID, access.PVE_TOKEN_SECRET],
        [access.PVE_ROOT_TOKEN_ID, access.PVE_ROOT_TOKEN_SECRET],
      ]) {
        const res = await undiciFetch(`${access.PVE_ENDPOINT}/api2/json/cluster/resources`, { headers: { authorization: `PVEAPIToken=${id}=${secret}` }, dispatcher: ca });
        assert.equal(res.status, 200, `the token ${id} from the credentials file is accepted`);
      }
    } finally {
      await ca.close();
    }
    const doctor = await pveflow(['doctor'], { DATA_DIR: dataDir });
    assert.equal(doctor.code, 0, `pveflow doctor with no settings passes on the embedded default:\n${doctor.stdout}\n${doctor.stderr}`);
    assert.match(doctor.stdout, /all \d+ checks passed/);
    for (const check of ['pve.auth', 'pve.template', 'sftp pve1', 'sftp pve2', 'sftp pve3', 'netbird.token']) assert.match(doctor.stdout, new RegExp(`^ok +${check}:`, 'm'));

    const code = await started.stop('SIGINT');
    assert.equal(code, 0, started.out());
    assert.match(started.out(), /stopped/);
    assert.doesNotMatch(started.out(), STACK_FRAME, `no stack trace on SIGINT:\n${started.out()}`);
    assert.doesNotMatch(started.out(), /Error/, `no error on SIGINT:\n${started.out()}`);
    for (const [what, port] of Object.entries(ports)) {
      assert.equal(await accepts(port), false, `${what} port ${port} still open after stop`);
    }
  } finally {
    started.kill();
  }
});

test('a restart says it restored the simulated world, SIGTERM stops it cleanly, and --reset-sim starts afresh', async () => {
  const again = await npmStart();
  try {
    assert.match(again.out(), /Simulated world +restored from \S+world\.json/, again.out());
    assert.equal(await again.stop('SIGTERM'), 0, again.out());
    assert.doesNotMatch(again.out(), STACK_FRAME, `no stack trace on SIGTERM:\n${again.out()}`);
    assert.doesNotMatch(again.out(), /Error/, `no error on SIGTERM:\n${again.out()}`);
  } finally {
    again.kill();
  }
  const reset = await npmStart(['--reset-sim']);
  try {
    assert.match(reset.out(), /Simulated world +started afresh \(--reset-sim\): the VMs, snippets and VPN peers of before are gone/, reset.out());
    assert.equal(await reset.stop('SIGINT'), 0, reset.out());
    assert.doesNotMatch(reset.out(), STACK_FRAME, reset.out());
  } finally {
    reset.kill();
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
