// Installs NetBird's OpenAPI document, the contract the NetBird simulator validates every request and response
// against, into the git-ignored .tools/reference/ (with its provenance beside it). It comes from NetBird's own Go
// module, the one the real-server build (scripts/install-netbird.sh) downloads too, through the go command: the
// module proxy serves it and the checksum database (and the pin below) vouch for it.
//
// Run by `npm install` (postinstall) and by hand: `npm run install:reference-data`.
// Without Go it cannot install the document: under npm install it says so and lets the install finish (outside CI),
// and the NetBird simulator, `npm start` with it, then refuses to start with the same instruction.
// PVEFLOW_SKIP_TOOLS=1 skips it (the container image runs no simulator).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MODULE = 'github.com/netbirdio/netbird';
const VERSION = 'v0.77.1';
/** The module's go.sum hash: a different download is refused, whatever the proxy or GONOSUMDB say. */
const MODULE_SUM = 'h1:qX5ceE3igLzAm+07Vdd+86KeXXGnzuQVtxYZYIK+cnQ=';
const PATH_IN_MODULE = 'shared/management/http/api/openapi.yml';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dest = join(root, '.tools', 'reference');
const documentFile = join(dest, 'netbird-openapi.yml');
const provenanceFile = join(dest, 'netbird-openapi.provenance.json');
const underNpmInstall = process.env.npm_lifecycle_event === 'postinstall';

if (process.env.PVEFLOW_SKIP_TOOLS === '1') process.exit(0);
if (upToDate()) {
  if (!underNpmInstall) console.log(`[pveflow] NetBird's OpenAPI document (${MODULE}@${VERSION}) is installed in ${dest}`);
  process.exit(0);
}

if (spawnSync('go', ['version']).status !== 0) {
  fail(
    `Go was not found, so NetBird's OpenAPI document (${MODULE}@${VERSION}, ${PATH_IN_MODULE}) is not installed in ${dest}. ` +
      'The NetBird simulator, and npm start with it, will not start without it: install Go (https://go.dev/dl) and run npm run install:reference-data.',
  );
}

// Outside any Go module (the temp folder), so no go.mod around decides what is downloaded.
const download = spawnSync('go', ['mod', 'download', '-json', `${MODULE}@${VERSION}`], { cwd: tmpdir(), encoding: 'utf8' });
let module;
try {
  module = JSON.parse(download.stdout);
} catch {
  fail(`'go mod download ${MODULE}@${VERSION}' failed (exit ${download.status}): ${download.stderr.trim()}`);
}
if (download.status !== 0 || module.Error) fail(`'go mod download ${MODULE}@${VERSION}' failed: ${module.Error ?? download.stderr.trim()}`);
if (module.Sum !== MODULE_SUM) fail(`${MODULE}@${VERSION} downloaded with hash ${module.Sum}, expected ${MODULE_SUM}: refusing it`);

const source = join(module.Dir, PATH_IN_MODULE);
if (!existsSync(source)) fail(`${MODULE}@${VERSION} has no ${PATH_IN_MODULE}`);
const text = readFileSync(source);
const provenance = {
  module: MODULE,
  version: VERSION,
  moduleSum: module.Sum,
  path: PATH_IN_MODULE,
  sha256: createHash('sha256').update(text).digest('hex'),
  ...(module.Origin?.Hash && { commit: module.Origin.Hash }),
};
mkdirSync(dest, { recursive: true });
// Written beside, then renamed: a reader sees the old file or the new one, never half of one. The module cache's
// copy is read-only; ours is not, so a later install can replace it.
writeFileSync(`${documentFile}.tmp`, text, { mode: 0o644 });
renameSync(`${documentFile}.tmp`, documentFile);
writeFileSync(`${provenanceFile}.tmp`, `${JSON.stringify(provenance, null, 2)}\n`, { mode: 0o644 });
renameSync(`${provenanceFile}.tmp`, provenanceFile);
console.log(`[pveflow] NetBird's OpenAPI document installed: ${documentFile} (${MODULE}@${VERSION}, sha256 ${provenance.sha256})`);

/** Installed, from this module version, and unchanged since. */
function upToDate() {
  if (!existsSync(documentFile) || !existsSync(provenanceFile)) return false;
  try {
    const recorded = JSON.parse(readFileSync(provenanceFile, 'utf8'));
    const sha256 = createHash('sha256').update(readFileSync(documentFile)).digest('hex');
    return recorded.module === MODULE && recorded.version === VERSION && recorded.moduleSum === MODULE_SUM && recorded.sha256 === sha256;
  } catch {
    return false;
  }
}

/** Under npm install outside CI a warning (the rest of the install is still useful); otherwise a failure. */
function fail(message) {
  if (underNpmInstall && !process.env.CI) {
    console.warn(`[pveflow] WARNING: ${message}`);
    process.exit(0);
  }
  console.error(`[pveflow] ${message}`);
  process.exit(1);
}
