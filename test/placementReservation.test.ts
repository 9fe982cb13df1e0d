import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { choosePlacementOffer, uncountedReservations, type PlacementOffer, type PlacementReservation } from '../src/domain/placementReservation';

const GiB = 1024 ** 3;
const equalNodes: PlacementOffer[] = ['pve1', 'pve2', 'pve3'].map((node) => ({ node, freeCpu: 24, freeMem: 64 * GiB }));
const need = { cpu: 2, mem: 2 * GiB };

describe('placement with reservations', () => {
  test('builds choosing at the same moment spread over equal nodes, two each for six', () => {
    const reserved: PlacementReservation[] = [];
    for (let i = 0; i < 6; i++) {
      const chosen = choosePlacementOffer(equalNodes, need, reserved)!;
      reserved.push({ holder: `b${i}`, node: chosen.node, ...need });
    }
    const perNode = Object.fromEntries(equalNodes.map((o) => [o.node, reserved.filter((r) => r.node === o.node).length]));
    assert.deepEqual(perNode, { pve1: 2, pve2: 2, pve3: 2 });
  });

  test('the freer node takes more: reservations are subtracted from what each node has free', () => {
    const offers: PlacementOffer[] = [
      { node: 'big', freeCpu: 30, freeMem: 200 * GiB },
      { node: 'small', freeCpu: 26, freeMem: 200 * GiB },
    ];
    const reserved: PlacementReservation[] = [];
    for (let i = 0; i < 4; i++) reserved.push({ holder: `b${i}`, node: choosePlacementOffer(offers, need, reserved)!.node, ...need });
    assert.deepEqual(
      reserved.map((r) => r.node),
      ['big', 'big', 'small', 'big'],
    );
  });

  test('a node whose memory the reservations exhaust comes after one that still fits, however much cpu it has', () => {
    const offers: PlacementOffer[] = [
      { node: 'cpu-rich', freeCpu: 60, freeMem: 3 * GiB },
      { node: 'roomy', freeCpu: 10, freeMem: 64 * GiB },
    ];
    const reserved = [{ holder: 'x', node: 'cpu-rich', ...need }];
    assert.equal(choosePlacementOffer(offers, need, [])!.node, 'cpu-rich');
    assert.equal(choosePlacementOffer(offers, need, reserved)!.node, 'roomy');
  });

  test('a reservation stops counting once the cluster shows its VM running on its node', () => {
    const reserved: PlacementReservation[] = [
      { holder: 'a', node: 'pve1', vmid: 101, ...need },
      { holder: 'b', node: 'pve1', ...need },
      { holder: 'c', node: 'pve2', vmid: 102, ...need },
    ];
    assert.deepEqual(
      uncountedReservations(reserved, new Set(['pve1/101', 'pve1/102'])).map((r) => r.holder),
      ['b', 'c'],
    );
  });

  test('no offer, no choice', () => {
    assert.equal(choosePlacementOffer([], need, []), undefined);
  });
});
