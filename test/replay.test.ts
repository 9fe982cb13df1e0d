import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { bundleWorkflowCode, Worker, type WorkflowBundle } from '@temporalio/worker';
import { historyFromJson } from './histories/historyJson';
import { quietLogger } from './support/quietLogger';

/**
 * The replay guard: every history in test/histories/ (recorded by scripts/record-histories.ts from real executions
 * of each workflow type and path) is replayed against today's workflow code. A change that would make a running
 * execution take a different path — a reordered activity, a removed timer, a new await without `patched()` — fails
 * here with the workflow and the event it diverged at, before it can wedge executions in production.
 */
const DIR = join(__dirname, 'histories');
const files = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort();

/** The workflow types we promise to guard; a new one without a recorded history fails the suite. */
const GUARDED = ['vmRequest', 'vmBuild', 'vmCompletion', 'clusterSync', 'cloneSlots', 'ipPool', 'apiKeyRegistry'];

describe('replay of recorded histories', () => {
  let bundle: WorkflowBundle;

  before(async () => {
    bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../src/workflows'), logger: quietLogger });
  });

  test('every guarded workflow type has at least one recorded history', () => {
    const types = new Set(files.map((f) => f.split('-')[0]));
    assert.deepEqual(
      GUARDED.filter((t) => !types.has(t)),
      [],
      `record them with: npx tsx scripts/record-histories.ts`,
    );
  });

  test('every recorded history replays deterministically on the current workflow code', async () => {
    assert.ok(files.length >= GUARDED.length, `only ${files.length} histories in ${DIR}`);
    const histories = files.map((f) => ({ workflowId: f.replace(/\.json$/, ''), history: historyFromJson(readFileSync(join(DIR, f), 'utf8')) }));
    const failures: string[] = [];
    let replayed = 0;
    for await (const result of Worker.runReplayHistories({ workflowBundle: bundle, replayName: 'pveflow-replay-guard' }, histories)) {
      replayed++;
      if (result.error) failures.push(`${result.workflowId}: ${result.error.name}: ${result.error.message}`);
    }
    assert.equal(replayed, files.length);
    assert.deepEqual(failures, [], `non-deterministic change to the workflows:\n${failures.join('\n')}`);
  });
});
