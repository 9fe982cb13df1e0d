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
  const gate = new LocalCloneGate();
  const keys = ['node/pve1', 'storage/ceph'];
  const a = track(gate.enter(keys, limits, never));
  const b = track(gate.enter(keys, limits, never));
  const c = track(gate.enter(keys, limits, never));
  await settle();
  assert.ok(a.done && b.done, 'two clones fit a limit of two');
  assert.equal(c.done, false, 'the third waits');
  a.value!();
  a.value!(); // leaving twice frees one place, not two
  await settle();
  assert.ok(c.done, 'the third enters once the first has left');
  const d = track(gate.enter(keys, limits, never));
  await settle();
  assert.equal(d.done, false, 'a double leave did not make room for a fourth');
});

test('a clone whose keys have room is not held behind one whose keys are full', async () => {
  const gate = new LocalCloneGate();
  const onPve1 = ['node/pve1', 'storage/ceph'];
  const leave1 = await gate.enter(onPve1, limits, never);
  await gate.enter(['node/pve1'], limits, never);
  const blocked = track(gate.enter(onPve1, limits, never));
  const other = track(gate.enter(['node/pve2'], limits, never));
  await settle();
  assert.equal(blocked.done, false, 'node/pve1 is full');
  assert.ok(other.done, 'node/pve2 has room and goes first');
  leave1();
  await settle();
  assert.ok(blocked.done, 'served in order once its node has room');
});

test('a cancelled wait leaves the queue and takes no place', async () => {
  const gate = new LocalCloneGate();
  const keys = ['storage/ceph'];
  const first = await gate.enter(keys, limits, never);
  await gate.enter(keys, limits, never);
  const cancel = new AbortController();
  const cancelled = track(gate.enter(keys, limits, cancel.signal));
  const after = track(gate.enter(keys, limits, never));
  cancel.abort(new Error('activity cancelled'));
  await settle();
  assert.ok(cancelled.done && cancelled.error instanceof Error, 'the cancelled wait rejects');
  first();
  await settle();
  assert.ok(after.done, 'the place goes to the next waiter, not to the cancelled one');
  await assert.rejects(gate.enter(keys, limits, cancel.signal), /activity cancelled/, 'an already cancelled activity does not queue');
});
