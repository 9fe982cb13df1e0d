/**
 * Runs the test groups of test/groups.ts in their order with node's test runner, each at its own concurrency and
 * test deadline, and says what each took against its budget. A failing group does not stop the next one: CI shows
 * every failure of a run. The last line is the totals, `N passed, N failed`, alone on its line (CI reads it).
 *
 *   node --import tsx scripts/run-tests.ts [group ...]     every group, or the ones named
 *   PVEFLOW_TEST_ONLY=<regex>                              only the files whose name matches (to try the runner, or
 *                                                          one file with its group's settings)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { testGroups, type TestGroup } from '../test/groups';

const root = resolve(__dirname, '..');

/** Where the groups' TAP reports are written while the run lasts. */
const scratch = mkdtempSync(join(tmpdir(), 'pveflow-test-run-'));

function exit(code: number): never {
  rmSync(scratch, { recursive: true, force: true });
  process.exit(code);
}

/**
 * The group's test runner while one runs. A stop of this script (CI's timeout, Ctrl-C) is passed on to it and waited
 * for, so that no test runs on unwatched; node's runner ends its test files at once (their `after` hooks do not run).
 */
let running: ChildProcess | undefined;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    const stop = () => exit(signal === 'SIGINT' ? 130 : 143);
    if (!running || running.exitCode !== null || running.signalCode !== null) return stop();
    running.once('exit', stop);
    running.kill(signal);
  });
}

interface GroupResult {
  group: TestGroup;
  files: number;
  seconds: number;
  passed: number;
  failed: number;
  skipped: number;
}

/** The summary node's TAP reporter ends with (`# pass 12`); the last of each wins, a test's own output comes before. */
function tapCounts(tap: string): { pass: number; fail: number; cancelled: number; skipped: number; todo: number } {
  const last = (name: string) => {
    const all = [...tap.matchAll(new RegExp(`^# ${name} (\\d+)$`, 'gm'))];
    return all.length > 0 ? Number(all[all.length - 1]![1]) : 0;
  };
  return { pass: last('pass'), fail: last('fail'), cancelled: last('cancelled'), skipped: last('skipped'), todo: last('todo') };
}

const count = (n: number, noun: string) => `${n} ${noun}${n === 1 ? '' : 's'}`;

const overBudget = (r: GroupResult) => `WARNING: test group ${r.group.name} took ${r.seconds} s, over its budget of ${r.group.budgetSeconds} s`;

async function runGroup(group: TestGroup, files: string[]): Promise<GroupResult> {
  const tapFile = join(scratch, `${group.name}.tap`);
  console.log(`[test] group '${group.name}' starts: ${count(files.length, 'file')}, ${group.concurrency} at a time, budget ${group.budgetSeconds} s`);
  const started = Date.now();
  // The spec reporter for whoever reads the log (it lists the failures again at the end), TAP to a file for the counts.
  const args = [
    '--import',
    'tsx',
    '--test',
    `--test-concurrency=${group.concurrency}`,
    `--test-timeout=${group.testTimeoutSeconds * 1000}`,
    '--test-reporter=spec',
    '--test-reporter-destination=stdout',
    '--test-reporter=tap',
    `--test-reporter-destination=${tapFile}`,
    ...files.map((file) => join('test', file)),
  ];
  const code = await new Promise<number>((done) => {
    const child = spawn(process.execPath, args, { cwd: root, stdio: 'inherit' });
    running = child;
    child.on('error', (err) => {
      console.error(`[test] group '${group.name}' could not start node: ${err.message}`);
      done(1);
    });
    child.on('exit', (status, signal) => done(status ?? (signal ? 1 : 0)));
  }).finally(() => (running = undefined));
  const seconds = Math.round((Date.now() - started) / 1000);
  let tap = '';
  try {
    tap = readFileSync(tapFile, 'utf8');
  } catch {
    // No report at all: the exit code below speaks for the group.
  }
  const counts = tapCounts(tap);
  let failed = counts.fail + counts.cancelled;
  if (code !== 0 && failed === 0) {
    console.log(`[test] group '${group.name}': node's test runner exited with ${code} without a failed test in its report; counted as one failure`);
    failed = 1;
  }
  const result = { group, files: files.length, seconds, passed: counts.pass, failed, skipped: counts.skipped + counts.todo };
  console.log(`[test] group '${group.name}' took ${seconds} s (budget ${group.budgetSeconds} s): ${result.passed} passed, ${result.failed} failed, ${result.skipped} skipped`);
  if (seconds > group.budgetSeconds) console.log(overBudget(result));
  return result;
}

async function main(): Promise<number> {
  const names = process.argv.slice(2);
  const unknown = names.filter((name) => !testGroups.some((group) => group.name === name));
  if (unknown.length > 0) {
    console.error(`no test group ${unknown.join(', ')}: the groups are ${testGroups.map((group) => group.name).join(', ')} (test/groups.ts)`);
    return 2;
  }
  const chosen = names.length > 0 ? testGroups.filter((group) => names.includes(group.name)) : testGroups;
  const only = process.env.PVEFLOW_TEST_ONLY ? new RegExp(process.env.PVEFLOW_TEST_ONLY) : undefined;
  if (only) console.log(`[test] PVEFLOW_TEST_ONLY=${only.source}: only the files whose name matches`);

  const started = Date.now();
  const results: GroupResult[] = [];
  for (const group of chosen) {
    const files = group.files.filter((file) => !only || only.test(file));
    if (files.length === 0) {
      console.log(`[test] group '${group.name}': no file matches PVEFLOW_TEST_ONLY, left out`);
      continue;
    }
    results.push(await runGroup(group, files));
  }

  console.log(`[test] ${count(results.length, 'group')} in ${Math.round((Date.now() - started) / 1000)} s:`);
  for (const r of results) {
    const over = r.seconds > r.group.budgetSeconds ? ', OVER BUDGET' : '';
    console.log(`[test]   ${r.group.name}: ${r.seconds} s of ${r.group.budgetSeconds} s${over}; ${count(r.files, 'file')}, ${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped`);
  }
  const passed = results.reduce((sum, r) => sum + r.passed, 0);
  const failed = results.reduce((sum, r) => sum + r.failed, 0);
  console.log(`${passed} passed, ${failed} failed`);
  return failed > 0 ? 1 : 0;
}

main().then(exit, (err: unknown) => {
  console.error(err);
  exit(1);
});
