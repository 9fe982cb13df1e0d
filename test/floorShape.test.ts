import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { describeSteps, floorStepsOf } from '../bench/floorShape';
import { historyFromJson } from './histories/historyJson';

/** The fair floor's shape (bench/floorShape.ts), derived from recorded pveflow histories. */
const history = (name: string) => historyFromJson(readFileSync(join(__dirname, 'histories', `${name}.json`), 'utf8'));

describe("the floor's shape from a pveflow lifecycle's histories", () => {
  test('a request: its Updates with the timers they cancel, its activity, and its two children with their own shapes', () => {
    const children = new Map([
      ['build', floorStepsOf(history('vmBuild-completed'), () => [])],
      ['completion', floorStepsOf(history('vmCompletion-completed'), () => [])],
    ]);
    const steps = floorStepsOf(history('vmRequest-happy-path'), (id) => children.get(id.includes('build') ? 'build' : 'completion')!);
    assert.equal(
      describeSteps(steps),
      'timer (cancelled), awaitUpdate, child(local ×2, ask, activity, tell, signalParent, activity ×3, local, tell, signalParent, activity ×3), timer (cancelled), awaitUpdate, activity, child(activity ×5)',
    );
  });

  test('a child tells its parent apart from the coordinator, and waits only for the answer to its ask', () => {
    const steps = floorStepsOf(history('vmBuild-completed'), () => []);
    const signals = steps.filter((s) => s.kind === 'signalParent' || s.kind === 'signalCoordinator');
    assert.deepEqual(signals, [{ kind: 'signalCoordinator', ask: true }, { kind: 'signalCoordinator', ask: false }, { kind: 'signalParent' }, { kind: 'signalCoordinator', ask: false }, { kind: 'signalParent' }]);
  });

  test('a timer that ran out is replayed as one that fires', () => {
    const steps = floorStepsOf(history('cloneSlots-two-builds'), () => []);
    assert.deepEqual(
      steps.filter((s) => s.kind === 'timer'),
      [{ kind: 'timer', fires: true }],
    );
  });
});
