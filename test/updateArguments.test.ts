import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { bundleWorkflowCode } from '@temporalio/worker';
import { parseActor, parseExtension, parseRejection } from '../src/contracts/updateArguments';
import { quietLogger } from './support/quietLogger';

describe('update arguments checked inside the workflow', () => {
  test('an actor needs a name of 1 to 200 characters; its note is optional and bounded', () => {
    assert.deepEqual(parseActor('approve', { by: 'rita' }), { by: 'rita' });
    assert.deepEqual(parseActor('approve', { by: 'rita', note: 'ok' }), { by: 'rita', note: 'ok' });
    assert.throws(() => parseActor('approve', { by: '' }), /^TypeError: approve: by must be a string of 1 to 200 characters$/);
    assert.throws(() => parseActor('cancel', { by: 'x'.repeat(201) }), /cancel: by must be/);
    assert.throws(() => parseActor('cancel', { note: 'no one' }), /cancel: by must be/);
    assert.throws(() => parseActor('rebuild', { by: 'rita', note: 7 }), /rebuild: note must be a string of at most 2000 characters/);
    assert.throws(() => parseActor('rebuild', { by: 'rita', note: 'x'.repeat(2001) }), /rebuild: note must be/);
    for (const notAnObject of [undefined, null, 'rita', ['rita']]) {
      assert.throws(() => parseActor('complete', notAnObject), /complete: the argument must be an object/);
    }
  });

  test('a rejection needs a reason', () => {
    assert.deepEqual(parseRejection('reject', { by: 'rita', reason: 'no budget' }), { by: 'rita', reason: 'no budget' });
    assert.throws(() => parseRejection('reject', { by: 'rita' }), /reject: reason must be a string of 1 to 2000 characters/);
    assert.throws(() => parseRejection('reject', { by: 'rita', reason: '' }), /reject: reason must be/);
  });

  test('an extension needs an ISO 8601 date-time with an offset', () => {
    for (const newEnd of ['2026-12-22T18:00:00Z', '2026-12-22T18:00:00.123Z', '2026-12-22T18:00+01:00', '2026-12-22T18:00:00-05:30']) {
      assert.equal(parseExtension('extend', { by: 'rita', newEnd }).newEnd, newEnd);
    }
    for (const newEnd of ['next friday', '2026-12-22', '2026-12-22T18:00:00', '2026-13-45T18:00:00Z', '2026-12-22 18:00:00Z', 1766426400000, undefined]) {
      assert.throws(() => parseExtension('extend', { by: 'rita', newEnd }), /extend: newEnd must be an ISO 8601 date-time with an offset/, String(newEnd));
    }
  });

  test('the workflow bundle carries no zod: the SDK evaluates every bundled module once per workflow', async () => {
    const bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../src/workflows'), logger: quietLogger });
    const modules = [...bundle.code.matchAll(/"\.\/(node_modules\/[^"]+|src\/[^"]+)"/g)].map((m) => m[1] ?? '');
    assert.ok(
      modules.some((m) => m === 'src/workflows/vmRequest.ts'),
      'the bundle lists its modules by path',
    );
    assert.deepEqual(
      modules.filter((m) => m.startsWith('node_modules/zod/')),
      [],
    );
  });
});
