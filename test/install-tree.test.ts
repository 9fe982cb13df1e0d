import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';

/**
 * `npm install` on a fresh clone rewrites package-lock.json whenever the lock's root entry disagrees with
 * package.json (npm copies name, version, bin, engines, the dependency ranges into it): a new user's tree is then
 * dirty before they change anything. Checked here without the network: the root entry must already be what npm
 * would write, and whatever the install scripts create must be git-ignored.
 */
const root = resolve(__dirname, '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'));

test('the lock file root entry carries every field npm install would write into it', () => {
  const entry = lock.packages[''];
  assert.equal(lock.name, pkg.name);
  assert.equal(lock.version, pkg.version);
  for (const field of ['name', 'version', 'license', 'bin', 'engines', 'dependencies', 'devDependencies', 'optionalDependencies', 'peerDependencies'] as const) {
    assert.deepEqual(entry[field], pkg[field], `package-lock.json packages[""].${field} differs from package.json; run npm install and commit the lock`);
  }
  const installScript = ['preinstall', 'install', 'postinstall'].some((s) => pkg.scripts?.[s]);
  assert.equal(entry.hasInstallScript === true, installScript, 'hasInstallScript matches the install scripts');
});

test('every dependency of package.json is in the lock', () => {
  for (const name of Object.keys({ ...pkg.dependencies, ...pkg.devDependencies })) {
    assert.ok(lock.packages[`node_modules/${name}`]?.version, `${name} is locked`);
  }
});

test("what install writes (node_modules, the Temporal binaries and NetBird's OpenAPI document in .tools, .data) is git-ignored", (t) => {
  const written = ['node_modules/x', '.tools/bin/temporal', '.tools/reference/netbird-openapi.yml', '.data/temporal.db'];
  const git = spawnSync('git', ['check-ignore', '--no-index', ...written], { cwd: root, encoding: 'utf8' });
  if (git.error) return t.skip('git is not installed');
  assert.deepEqual(git.stdout.trim().split('\n'), written);
});
