import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LocalCloneGate } from '../src/activities/proxmox/localCloneGate';

const limits = { 'node/pve1': 2, 'storage/ceph': 2, 'node/pve2': 2 };
const never = new AbortController().signal;
/** Lets every settled promise's callbacks run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

function track<T>(p: Promise<T>) {
  const state: { value?: T; error?: unknown; done: boolean } = { done: false };
  p.then(
    (value) => Object.assign(state, { value, done: true }),
    (error: unknown) => Object.assign(state, { error, done: true }),
  );
  return state;
}

test('the gate admits clones up to each key\'s limit and the next one when a clone leaves', async () => {
  const gate = new LocalCloneGate<string>();
  const keys = ['node/pve1', 'storage/ceph'];
  const a = track(gate.enter(keys, limits, never, 'a'));
  const b = track(gate.enter(keys, limits, never, 'b'));
  const c = track(gate.enter(keys, limits, never, 'c'));
  await settle();
  assert.ok(a.done && b.done, 'two clones fit a limit of two');
  assert.equal(c.done, false, 'the third waits');
  a.value!.leave();
  a.value!.leave(); // leaving twice frees one place, not two
  await settle();
  assert.ok(c.done, 'the third enters once the first has left');
  assert.equal(await c.value!.handed, false, 'a plain leave hands nothing over: the third asks the workflow itself');
  const d = track(gate.enter(keys, limits, never, 'd'));
  await settle();
  assert.equal(d.done, false, 'a double leave did not make room for a fourth');
});

test('a clone whose keys have room is not held behind one whose keys are full', async () => {
  const gate = new LocalCloneGate<string>();
  const onPve1 = ['node/pve1', 'storage/ceph'];
  const first = await gate.enter(onPve1, limits, never, 'first');
  assert.equal(await first.handed, false, 'admitted at once: nobody handed it a slot');
  await gate.enter(['node/pve1'], limits, never, 'second');
  const blocked = track(gate.enter(onPve1, limits, never, 'blocked'));
  const other = track(gate.enter(['node/pve2'], limits, never, 'other'));
  await settle();
  assert.equal(blocked.done, false, 'node/pve1 is full');
  assert.ok(other.done, 'node/pve2 has room and goes first');
  first.leave();
  await settle();
  assert.ok(blocked.done, 'served in order once its node has room');
});

test('a clone leaving hands its place to the clone admitted after it, which learns whether it got the slot', async () => {
  const gate = new LocalCloneGate<string>();
  const keys = ['storage/ceph'];
  const a = await gate.enter(keys, limits, never, 'a');
  await gate.enter(keys, limits, never, 'b');
  const c = track(gate.enter(keys, limits, never, 'c'));
  await settle();
  const admitted = a.leaveHandingOver();
  assert.deepEqual(admitted.map((h) => h.request), ['c'], 'the waiting clone is admitted in the leaving one\'s place');
  await settle();
  assert.ok(c.done, 'admitted');
  const handed = track(c.value!.handed);
  await settle();
  assert.equal(handed.done, false, 'it waits to hear whether the workflow granted it the slot');
  admitted[0]!.hand(true);
  assert.equal(await c.value!.handed, true);
  assert.deepEqual(a.leaveHandingOver(), [], 'a second leave hands over nothing');
});

test('a cancelled wait leaves the queue and takes no place', async () => {
  const gate = new LocalCloneGate<string>();
  const keys = ['storage/ceph'];
  const first = await gate.enter(keys, limits, never, 'first');
  await gate.enter(keys, limits, never, 'second');
  const cancel = new AbortController();
  const cancelled = track(gate.enter(keys, limits, cancel.signal, 'cancelled'));
  const after = track(gate.enter(keys, limits, never, 'after'));
  cancel.abort(new Error('activity cancelled'));
  await settle();
  assert.ok(cancelled.done && cancelled.error instanceof Error, 'the cancelled wait rejects');
  assert.deepEqual(first.leaveHandingOver().map((h) => h.request), ['after'], 'the place goes to the next waiter, not to the cancelled one');
  await settle();
  assert.ok(after.done);
  await assert.rejects(gate.enter(keys, limits, cancel.signal, 'late'), /activity cancelled/, 'an already cancelled activity does not queue');
});
