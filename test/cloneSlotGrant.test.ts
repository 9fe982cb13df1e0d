import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { grantCloneSlots, type SlotAsk } from '../src/domain/cloneSlotGrant';

const ask = (holder: string, keys: string[], limit = 1): SlotAsk => ({ holder, keys, limits: Object.fromEntries(keys.map((k) => [k, limit])) });
const holders = (granted: SlotAsk[]) => granted.map((g) => g.holder);

describe('the clone slot grant', () => {
  test('grants waiting asks in order while their keys have room', () => {
    const waiting = [ask('a', ['storage/ceph'], 2), ask('b', ['storage/ceph'], 2), ask('c', ['storage/ceph'], 2)];
    assert.deepEqual(holders(grantCloneSlots([], waiting)), ['a', 'b']);
  });

  test('counts what is already held against the limits', () => {
    assert.deepEqual(holders(grantCloneSlots([{ keys: ['storage/ceph'] }], [ask('a', ['storage/ceph'])])), []);
    assert.deepEqual(holders(grantCloneSlots([{ keys: ['storage/ceph'] }], [ask('a', ['storage/ceph'], 2)])), ['a']);
  });

  test('a clone whose node and storages have room never waits behind one whose do not', () => {
    const held = [{ keys: ['node/pve1', 'storage/local-lvm@pve1'] }];
    const waiting = [ask('pve1-again', ['node/pve1', 'storage/local-lvm@pve1']), ask('pve2', ['node/pve2', 'storage/local-lvm@pve2'])];
    assert.deepEqual(holders(grantCloneSlots(held, waiting)), ['pve2']);
  });

  test('first come, first served among asks for the same keys: the skipped ask keeps its turn over later ones', () => {
    const waiting = [ask('first', ['node/pve1', 'storage/ceph']), ask('other-node', ['node/pve2', 'storage/ceph']), ask('later', ['node/pve1'])];
    // ceph is one clone at once: first takes it; other-node shares ceph and waits; later needs only pve1, held by first.
    assert.deepEqual(holders(grantCloneSlots([], waiting)), ['first']);
    assert.deepEqual(holders(grantCloneSlots([{ keys: ['node/pve1', 'storage/ceph'] }], waiting.slice(1))), []);
    assert.deepEqual(holders(grantCloneSlots([], waiting.slice(1))), ['other-node', 'later']);
  });

  test('a key without a limit never waits, and an ask without keys is granted at once', () => {
    const waiting = [
      { holder: 'a', keys: ['node/pve1'], limits: {} },
      { holder: 'b', keys: [], limits: {} },
    ];
    assert.deepEqual(holders(grantCloneSlots([{ keys: ['node/pve1'] }, { keys: ['node/pve1'] }], waiting)), ['a', 'b']);
  });
});
