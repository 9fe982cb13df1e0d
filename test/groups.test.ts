import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { testGroups } from './groups';

/**
 * `npm test` runs the groups of test/groups.ts, not test/*.test.ts: a test file that no group lists would never run,
 * and nothing would say so. This holds the manifest to the folder.
 */
describe('the test groups', () => {
  const testFiles = readdirSync(__dirname).filter((name) => name.endsWith('.test.ts'));

  test('every test file is in exactly one group', () => {
    const groupsOf = (file: string) => testGroups.filter((group) => group.files.includes(file)).map((group) => group.name);
    const forgotten = testFiles.filter((file) => groupsOf(file).length === 0);
    assert.deepEqual(forgotten, [], `not in any group of test/groups.ts (add each where its kind says; a file that is in none never runs): ${forgotten.join(', ')}`);
    const twice = testFiles.filter((file) => groupsOf(file).length > 1).map((file) => `${file} (${groupsOf(file).join(', ')})`);
    assert.deepEqual(twice, [], `in more than one group of test/groups.ts: ${twice.join(', ')}`);
    for (const group of testGroups) assert.equal(new Set(group.files).size, group.files.length, `group ${group.name} lists a file twice`);
  });

  test('every file a group lists exists', () => {
    const missing = testGroups.flatMap((group) => group.files.filter((file) => !existsSync(join(__dirname, file))).map((file) => `${file} (${group.name})`));
    assert.deepEqual(missing, [], `listed in test/groups.ts but not in test/: ${missing.join(', ')}`);
  });

  test('the groups have distinct names, a budget, a test deadline and a concurrency node accepts', () => {
    assert.equal(new Set(testGroups.map((group) => group.name)).size, testGroups.length);
    for (const group of testGroups) {
      assert.ok(group.budgetSeconds > 0 && group.testTimeoutSeconds > 0, group.name);
      assert.ok([1, 2].includes(group.concurrency), group.name);
      assert.ok(group.files.length > 0, `group ${group.name} is empty`);
    }
  });
});
