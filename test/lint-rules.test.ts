import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { ESLint } from 'eslint';

/**
 * The rules the project's style leans on (docs/style.md, Tooling; the floors of docs/architecture.md), checked against
 * code that breaks them: a linter configuration that quietly lost one would otherwise pass every tree.
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

interface Floor {
  imports: string[];
  typesOnly?: string[];
}
interface FloorConfig {
  floors: Record<string, Floor>;
  compositionRoots: string[];
  MAX_DEPTH: number;
  place(name: string): string;
}
const floorConfig = (): Promise<FloorConfig> => import(resolve(root, 'eslint.config.mjs')) as Promise<FloorConfig>;

describe('floors: imports point down (docs/architecture.md, Floors)', () => {
  test('the console may not import the API or the workflows, at any depth; its own api module is fine', { timeout: 300_000 }, async () => {
    const broken = await rulesBroken(
      'src/console/pages/RequestList.tsx',
      "import type { ApiKeyStore } from '../../api/auth/apiKeys';\nimport { decide } from '../../workflows/request/operationRules';\nimport { api } from '../api';\nimport { after } from '../../domain/requestLifecycle';\nexport const probe = [decide, api, after] as unknown as ApiKeyStore;\n",
    );
    assert.deepEqual(
      broken.map((m) => m.split(':')[0]),
      ['@typescript-eslint/no-restricted-imports', '@typescript-eslint/no-restricted-imports'],
      broken.join('\n'),
    );
    assert.match(broken[0]!, /'\.\.\/\.\.\/api\/auth\/apiKeys'.*src\/console\/ may import src\/domain\/, src\/contracts\//);
    assert.match(broken[1]!, /'\.\.\/\.\.\/workflows\/request\/operationRules'/);
  });

  test('domain and contracts import nothing above them; a top-level file is read from its own folder', { timeout: 300_000 }, async () => {
    const domain = await rulesBroken(
      'src/domain/quotas.ts',
      "import { problem } from '../api/http/problems';\nimport type { vmBuild } from '../workflows/vmBuild';\nexport const probe = [problem] as unknown as typeof vmBuild;\n",
    );
    assert.deepEqual(domain.length, 2, domain.join('\n'));
    assert.match(domain[1]!, /'\.\.\/workflows\/vmBuild'.*src\/domain\/ may import src\/contracts\/, src\/errors\.ts/);
    const contracts = await rulesBroken('src/contracts/apiSchemas.ts', "import { activities } from '../activities';\nexport const probe = activities;\n");
    assert.match(contracts.join('\n'), /no-restricted-imports: '\.\.\/activities'/);
    const config = await rulesBroken('src/config.ts', "import { loadApiSettings } from './api/http/apiConfig';\nexport const probe = loadApiSettings;\n");
    assert.match(config.join('\n'), /no-restricted-imports: '\.\/api\/http\/apiConfig'.*src\/config\.ts may import/);
  });

  test('a workflow imports its activities as types only, and nothing of the API; Node built-ins stay refused', { timeout: 300_000 }, async () => {
    const broken = await rulesBroken(
      'src/workflows/request/lease.ts',
      "import type * as activities from '../../activities';\nimport { createActivities } from '../../activities';\nimport { problem } from '../../api/http/problems';\nimport { randomUUID } from 'node:crypto';\nexport const probe = [createActivities, problem, randomUUID] as unknown as typeof activities;\n",
    );
    assert.deepEqual(
      broken.map((m) => m.split(':')[0]),
      ['@typescript-eslint/no-restricted-imports', '@typescript-eslint/no-restricted-imports', '@typescript-eslint/no-restricted-imports'],
      broken.join('\n'),
    );
    assert.match(broken[0]!, /'\.\.\/\.\.\/activities'.*src\/activities\/ as types only/);
    assert.match(broken[1]!, /'\.\.\/\.\.\/api\/http\/problems'/);
    assert.match(broken[2]!, /node:crypto/);
  });

  test('every entry of src/ has a floor (or is a composition root), and no file is nested deeper than the rule reads', async () => {
    const { floors, compositionRoots, MAX_DEPTH } = await floorConfig();
    const entries = readdirSync(join(root, 'src')).map((e) => e.replace(/\.tsx?$/, ''));
    const unplaced = entries.filter((e) => !(e in floors) && !compositionRoots.includes(e));
    assert.deepEqual(unplaced, [], 'give each a row in eslint.config.mjs floors and docs/architecture.md, Floors');
    const depth = (dir: string): number => Math.max(0, ...readdirSync(dir).map((e) => (statSync(join(dir, e)).isDirectory() ? 1 + depth(join(dir, e)) : 0)));
    for (const floor of Object.keys(floors)) {
      const dir = join(root, 'src', floor);
      if (statSync(dir, { throwIfNoEntry: false })?.isDirectory()) assert.ok(depth(dir) < MAX_DEPTH, `${relative(root, dir)} nests deeper than MAX_DEPTH in eslint.config.mjs`);
    }
  });

  test("docs/architecture.md's table of floors is the lint rule's table", async () => {
    const { floors, place } = await floorConfig();
    const doc = readFileSync(resolve(root, 'docs/architecture.md'), 'utf8');
    const section = doc.split(/^## Floors$/m)[1]!.split(/^## /m)[0]!;
    const names = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    const documented = section
      .split('\n')
      .filter((line) => /^\| `src\//.test(line))
      .map((line) => line.split('|').slice(1, 4).map(names));
    const configured = Object.entries(floors).map(([name, f]) => [[place(name)], f.imports.map(place), (f.typesOnly ?? []).map(place)]);
    assert.deepEqual(documented, configured);
  });
});

test('the style guide the lint configuration cites is in the repository and states both rules', () => {
  const cited = new Set([readFileSync(resolve(root, 'eslint.config.mjs'), 'utf8'), readFileSync(__filename, 'utf8')].flatMap((text) => [...text.matchAll(/\b([\w/]+\.md)\b/g)].map((m) => m[1]!)));
  assert.deepEqual([...cited].sort(), ['docs/architecture.md', 'docs/style.md']);
  assert.match(readFileSync(resolve(root, 'docs/architecture.md'), 'utf8'), /^## Floors$/m);
  const guide = readFileSync(resolve(root, 'docs/style.md'), 'utf8');
  assert.match(guide, /no-floating-promises/);
  assert.match(guide, /`src\/workflows\/` imports no\s+Node built-in/);
});
