import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';
import { describe, test } from 'node:test';

/**
 * docs/architecture.md names only what exists: a newcomer who follows a name in it finds the thing. Every name in
 * backticks is checked by its kind (a path, a workflow, a file's name, a request status, an npm script, a setting, an
 * API route), every folder of src/ and every workflow is named, and the diagram passes Mermaid's own parser.
 */
const root = resolve(__dirname, '..');
const docPath = join(root, 'docs/architecture.md');
const doc = readFileSync(docPath, 'utf8');
const read = (path: string) => readFileSync(join(root, path), 'utf8');

const mermaidBlocks = [...doc.matchAll(/```mermaid\n([\s\S]*?)```/g)].map((m) => m[1]!);
const prose = doc.replace(/```mermaid\n[\s\S]*?```/g, '');

/** Each backticked name with the line it stands on. */
const named = prose.split('\n').flatMap((line) => [...line.matchAll(/`([^`]+)`/g)].map((m) => ({ name: m[1]!, line })));

const workflows = [...read('src/workflows/index.ts').matchAll(/export \{ (\w+) \}/g)].map((m) => m[1]!);

function filesUnder(dir: string): string[] {
  return readdirSync(join(root, dir)).flatMap((entry) => {
    const path = join(dir, entry);
    return statSync(join(root, path)).isDirectory() ? filesUnder(path) : [path];
  });
}
const fileNames = new Set(filesUnder('src').map((f) => basename(f, extname(f))));

const statusUnion = read('src/contracts/types.ts').match(/export type RequestStatus =([\s\S]*?);/)?.[1] ?? '';
const statuses = new Set([...statusUnion.matchAll(/'(\w+)'/g)].map((m) => m[1]!));

const scripts = Object.keys((JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts);
const config = read('src/config.ts');
/** Where the API's routes are mounted and described. */
const routes = read('src/api/app.ts') + read('src/api/openapi.ts');

/** A name's kind, and why it does not hold (undefined when it does). */
function refusal(name: string, line: string): string | undefined {
  const route = name.match(/^(GET|POST|PUT|PATCH|DELETE) (\/api\/[\w/{}:]+)$/);
  if (route) return routes.includes(`'${route[2]}'`) ? undefined : `no route ${route[2]} in src/api/app.ts or src/api/openapi.ts`;
  const script = name.match(/^npm (?:start|run ([\w:-]+))$/);
  if (script) return scripts.includes(script[1] ?? 'start') ? undefined : `no npm script ${script[1] ?? 'start'} in package.json`;
  if (name.includes('/') || /\.\w+$/.test(name)) {
    const exists = existsSync(join(root, name));
    // A file being written on another branch today may be named ahead of its merge, saying so; once it exists, the
    // doc must stop saying so.
    const ahead = /being written/.test(line);
    if (exists && ahead) return `${name} exists now: drop "being written" from its line`;
    return exists || ahead ? undefined : `no ${name} in the tree`;
  }
  if (/^[A-Z][A-Z0-9_]+$/.test(name)) return config.includes(name) ? undefined : `no setting ${name} in src/config.ts`;
  if (/^[A-Z][a-z]+$/.test(name)) return statuses.has(name) ? undefined : `${name} is not a request status`;
  if (/^[a-z][A-Za-z]+$/.test(name)) return workflows.includes(name) || fileNames.has(name) ? undefined : `${name} is neither a workflow nor a file in src/`;
  return `a name this test cannot check: write it so that it can (a path, a workflow, a status, a script, a setting)`;
}

describe('docs/architecture.md', () => {
  test('every name in backticks exists in the tree', () => {
    assert.ok(named.length > 30, `the doc names its parts in backticks (${named.length} found)`);
    const wrong = named.map(({ name, line }) => [name, refusal(name, line)]).filter(([, why]) => why);
    assert.deepEqual(wrong, []);
  });

  test('every folder of src/ and every workflow is named', () => {
    const folders = readdirSync(join(root, 'src')).filter((entry) => statSync(join(root, 'src', entry)).isDirectory());
    const names = new Set(named.map((n) => n.name));
    assert.deepEqual(
      folders.filter((f) => !names.has(`src/${f}/`)),
      [],
      'folders of src/ the doc does not name',
    );
    assert.deepEqual(
      workflows.filter((w) => !names.has(w)),
      [],
      'workflows the doc does not name',
    );
    assert.ok(workflows.length >= 6, `the workflows are read from src/workflows/index.ts (${workflows.join(', ')})`);
  });

  test("its one diagram shows every workflow and passes Mermaid's parser", async () => {
    assert.equal(mermaidBlocks.length, 1, 'one diagram');
    const diagram = mermaidBlocks[0]!;
    assert.deepEqual(
      workflows.filter((w) => !diagram.includes(w)),
      [],
      'workflows missing from the diagram',
    );
    // Mermaid sanitizes labels with DOMPurify, which needs a DOM: jsdom's, no browser.
    const { JSDOM } = await import('jsdom');
    const { window } = new JSDOM('<!doctype html><html><body></body></html>');
    Object.assign(globalThis, { window, document: window.document });
    try {
      const { default: mermaid } = await import('mermaid');
      assert.deepEqual(await mermaid.parse(diagram), { diagramType: 'flowchart-v2', config: {} });
      // The parser is a real one: a broken edge is refused.
      await assert.rejects(mermaid.parse(diagram.replace('--> request', '--> -->')), /Parse error/);
    } finally {
      window.close();
      delete (globalThis as { window?: unknown }).window;
      delete (globalThis as { document?: unknown }).document;
    }
  });

  test('the README links to it', () => {
    assert.match(read('README.md'), /\]\(docs\/architecture\.md\)/);
  });
});
