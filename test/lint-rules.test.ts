import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, test } from 'node:test';
import { ESLint } from 'eslint';

/**
 * The two rules the project's style leans on (docs/style.md, Tooling), checked against code that breaks them: a linter
 * configuration that quietly lost one would otherwise pass every tree.
 */
const root = resolve(__dirname, '..');
const eslint = new ESLint({ cwd: root });

async function rulesBroken(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: resolve(root, file) });
  return result!.messages.map((m) => `${m.ruleId}: ${m.message}`);
}

describe('lint', () => {
  test('a workflow may not import a Node built-in (types are fine: they are erased before bundling)', { timeout: 300_000 }, async () => {
    const broken = await rulesBroken(
      'src/workflows/clusterSync.ts',
      "import { randomUUID } from 'node:crypto';\nimport { readFileSync } from 'fs';\nimport type { Stats } from 'node:fs';\nexport const probe = (s?: Stats) => [randomUUID(), readFileSync, s];\n",
    );
    assert.deepEqual(
      broken.map((m) => m.split(':')[0]),
      ['@typescript-eslint/no-restricted-imports', '@typescript-eslint/no-restricted-imports'],
      broken.join('\n'),
    );
    assert.match(broken[0]!, /node:crypto/);
    assert.match(broken[1]!, /'fs'/);
  });

  test('a promise nobody awaits is refused; `void` marks a deliberate fire-and-forget', { timeout: 300_000 }, async () => {
    const broken = await rulesBroken(
      'src/observability/requestCounts.ts',
      'export async function later(): Promise<void> {}\nexport function forgets(): void {\n  later();\n}\nexport function meansIt(): void {\n  void later();\n}\n',
    );
    assert.deepEqual(
      broken.map((m) => m.split(':')[0]),
      ['@typescript-eslint/no-floating-promises'],
      broken.join('\n'),
    );
  });
});

test('the style guide the lint configuration cites is in the repository and states both rules', () => {
  const cited = new Set([readFileSync(resolve(root, 'eslint.config.mjs'), 'utf8'), readFileSync(__filename, 'utf8')].flatMap((text) => [...text.matchAll(/\b([\w/]+\.md)\b/g)].map((m) => m[1]!)));
  assert.deepEqual([...cited], ['docs/style.md']);
  const guide = readFileSync(resolve(root, 'docs/style.md'), 'utf8');
  assert.match(guide, /no-floating-promises/);
  assert.match(guide, /`src\/workflows\/` imports no\s+Node built-in/);
});
