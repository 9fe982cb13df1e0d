// @ts-check
import { existsSync } from 'node:fs';
import { builtinModules } from 'node:module';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * Type-aware linting: each file is checked with the tsconfig nearest to it (the root's for the server, tests,
 * benchmarks and scripts; src/console's for the console).
 */
// Workflow code runs in Temporal's deterministic sandbox: Node's built-ins are not there (and I/O belongs in
// activities). Types are erased before bundling, so type imports stay allowed. Part of the workflows' floor rule:
// two configs of one rule do not merge, the later one wins.
const builtinMessage = 'Node built-ins do not exist in the workflow sandbox: do this in an activity.';
const workflowBuiltins = {
  paths: builtinModules.map((name) => ({ name, message: builtinMessage, allowTypeImports: true })),
  patterns: [{ group: ['node:*'], message: builtinMessage, allowTypeImports: true }],
};

/**
 * The floors of src/ (docs/architecture.md, "Floors"): what each folder (or top-level file) may import from the rest
 * of src/. Imports point down, so a rule the console, the API and the workflows share sits below all three.
 * `typesOnly`: imports erased before run time (a workflow's activities as `proxyActivities` sees them; a workflow's
 * signature for a typed start). The composition roots wire everything and may import anything.
 * test/lint-rules.test.ts holds docs/architecture.md's table to this one and every entry of src/ to a floor.
 */
export const floors = {
  domain: { imports: ['contracts', 'errors'] },
  contracts: { imports: ['domain', 'errors'] },
  errors: { imports: [] },
  version: { imports: [] },
  net: { imports: [] },
  // The settings' defaults come from where they apply (a client's own timeout), so that each is written once.
  config: { imports: ['clients', 'domain', 'contracts', 'errors'] },
  // The request choices the configuration allows (images, networks, limits), parsed once for the API and the doctor.
  requestChoices: { imports: ['config', 'domain', 'contracts', 'errors'] },
  credentials: { imports: ['domain', 'contracts', 'errors'] },
  observability: { imports: ['net', 'domain', 'contracts', 'errors'] },
  clients: { imports: ['observability', 'domain', 'contracts', 'errors'] },
  workflows: { imports: ['domain', 'contracts', 'errors'], typesOnly: ['activities'] },
  activities: { imports: ['clients', 'credentials', 'observability', 'domain', 'contracts', 'errors'] },
  temporal: { imports: ['config', 'observability', 'domain', 'contracts', 'errors'], typesOnly: ['workflows'] },
  simulators: { imports: ['clients', 'net', 'domain', 'contracts', 'errors'] },
  doctor: { imports: ['clients', 'simulators', 'config', 'requestChoices', 'observability', 'domain', 'contracts', 'errors'] },
  api: { imports: ['temporal', 'credentials', 'observability', 'config', 'requestChoices', 'version', 'net', 'domain', 'contracts', 'errors'], typesOnly: ['workflows'] },
  cli: { imports: ['version', 'domain', 'contracts', 'errors'] },
  console: { imports: ['domain', 'contracts'] },
};
export const compositionRoots = ['embedded', 'main', 'worker'];

/** Files nested this deep below their floor's folder get a rule of their own: a relative import is read by depth. */
export const MAX_DEPTH = 6;

/** A floor's place as docs and messages name it: `src/config.ts` for a top-level file, `src/api/` for a folder. */
export const place = (name) => (existsSync(`${import.meta.dirname}/src/${name}.ts`) ? `src/${name}.ts` : `src/${name}/`);

/**
 * no-restricted-imports matches the import as written, not the file it resolves to, so each depth below a floor's
 * folder gets its own patterns: from src/console/pages/, `../../api/...` is src/api but `../api` is src/console/api.
 */
function floorConfigs() {
  const entries = [...Object.keys(floors), ...compositionRoots];
  return Object.entries(floors).flatMap(([name, floor]) => {
    const where = place(name);
    const isFile = where.endsWith('.ts');
    const allowed = new Set([name, ...floor.imports]);
    const typesOnly = floor.typesOnly ?? [];
    const barred = entries.filter((e) => !allowed.has(e) && !typesOnly.includes(e));
    const may = `${where} may import ${floor.imports.length ? floor.imports.map(place).join(', ') : 'nothing else in src/'}`;
    // The way up to src/ as written: `./` from a top-level file, one `../` per folder otherwise.
    const group = (names, up) => `^${up === 0 ? '\\./' : `(\\.\\./){${up}}`}(${names.join('|')})(/|\\.tsx?$|$)`;
    const depths = isFile ? [0] : Array.from({ length: MAX_DEPTH }, (_, d) => d);
    return depths.map((depth) => {
      const up = isFile ? 0 : depth + 1;
      const patterns = [];
      if (barred.length) patterns.push({ regex: group(barred, up), message: `Imports point down (docs/architecture.md, Floors): ${may}.` });
      if (typesOnly.length)
        patterns.push({ regex: group(typesOnly, up), allowTypeImports: true, message: `Imports point down (docs/architecture.md, Floors): ${may}, and ${typesOnly.map(place).join(', ')} as types only.` });
      const options = { paths: [], patterns };
      if (name === 'workflows') {
        options.paths.push(...workflowBuiltins.paths);
        options.patterns.push(...workflowBuiltins.patterns);
      }
      return {
        files: isFile ? [where] : [`${where}${'*/'.repeat(depth)}*.{ts,tsx}`],
        rules: { '@typescript-eslint/no-restricted-imports': ['error', options] },
      };
    });
  });
}

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', '.tools/', 'coverage/', '**/*.js', '**/*.mjs', '**/*.cjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // A promise nobody awaits loses its failure: await it, or mark a deliberate fire-and-forget with `void`.
      '@typescript-eslint/no-floating-promises': [
        'error',
        // node:test's test() and describe() return promises the runner itself awaits.
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite'] }] },
      ],
      // The no-unsafe-* family flags every use of an `any` (JSON.parse, untyped responses in tests): hundreds of
      // findings whose fix is a cast, not a safer program. zod parses what comes from outside (docs/style.md, Activities and edges).
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      // Noise for this code base, each checked finding by finding: activities and handlers are async to fit their
      // interface (require-await); `String(unknown)` on purpose (no-base-to-string); methods passed as values are
      // arrow properties or called with their object (unbound-method); tests keep `any` for JSON bodies; regexes in
      // tests match two spaces on purpose; gRPC codes are compared as numbers.
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-base-to-string': 'off',
      '@typescript-eslint/unbound-method': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/restrict-template-expressions': 'off',
      '@typescript-eslint/no-unsafe-enum-comparison': 'off',
      'no-regex-spaces': 'off',
      // Not a defect, and autofixable: left for a tree-wide `eslint --fix` pass rather than edits in every branch.
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
      // A caught error passed on unchanged is the rejection it was.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingAny: true, allowThrowingUnknown: true }],
      // JSX event handlers may be async: Preact ignores what they return, and they report their own failures.
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { attributes: false } }],
      // `let x; const f = () => x?.(); ... x = ...`: the closure reads it before the one assignment.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
    },
  },
  ...floorConfigs(),
);
