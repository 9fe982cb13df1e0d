import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { pveflowVersion } from '../src/version';

/**
 * A release is a version that means something: semver in package.json, the same string every process prints, a
 * CHANGELOG entry for it, and a recorded previous release (release.json) that the upgrade checks start from.
 */
const root = join(__dirname, '..');
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
const changelog = readFileSync(join(root, 'CHANGELOG.md'), 'utf8');
const release = JSON.parse(readFileSync(join(root, 'release.json'), 'utf8')) as { previous: { version: string; commit: string } };
const semver = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?$/;
const git = (...args: string[]) => execFileSync('git', args, { cwd: root, encoding: 'utf8' }).trim();

describe('releases', () => {
  test('the version is semver and is what the processes report', () => {
    assert.match(manifest.version, semver);
    assert.equal(pveflowVersion, manifest.version);
  });

  test('the CHANGELOG has an entry for the version (or Unreleased while it is a pre-release) and for the previous release', () => {
    const headings = [...changelog.matchAll(/^## (\S+)/gm)].map((m) => m[1]);
    const own = manifest.version.includes('-') ? 'Unreleased' : manifest.version;
    assert.ok(headings.includes(own), `CHANGELOG.md has no "## ${own}" heading (has: ${headings.join(', ')})`);
    assert.ok(headings.includes(release.previous.version), `CHANGELOG.md has no entry for the previous release ${release.previous.version}`);
  });

  test('the previous release is a commit of this history whose package.json carries that version', () => {
    assert.match(release.previous.commit, /^[0-9a-f]{40}$/);
    assert.doesNotThrow(() => git('merge-base', '--is-ancestor', release.previous.commit, 'HEAD'), `${release.previous.commit} is not an ancestor of HEAD`);
    const then = JSON.parse(git('show', `${release.previous.commit}:package.json`)) as { version: string };
    assert.equal(then.version, release.previous.version);
    assert.ok(manifest.version !== release.previous.version || git('rev-parse', 'HEAD') === release.previous.commit, 'code after a release carries a newer version');
  });
});
