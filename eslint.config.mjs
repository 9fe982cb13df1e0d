// @ts-check
import { builtinModules } from 'node:module';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * Type-aware linting: each file is checked with the tsconfig nearest to it (the root's for the server, tests,
 * benchmarks and scripts; src/console's for the console).
 */
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
  {
    // Workflow code runs in Temporal's deterministic sandbox: Node's built-ins are not there (and I/O belongs in
    // activities). Types are erased before bundling, so type imports stay allowed.
    files: ['src/workflows/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: builtinModules.map((name) => ({
            name,
            message: 'Node built-ins do not exist in the workflow sandbox: do this in an activity.',
            allowTypeImports: true,
          })),
          patterns: [
            {
              group: ['node:*'],
              message: 'Node built-ins do not exist in the workflow sandbox: do this in an activity.',
              allowTypeImports: true,
            },
          ],
        },
      ],
    },
  },
);
