import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { generateSeed, zeroTiming } from '../src/simulators/pve';
import { HARNESS_ROOT_SECRET, HARNESS_SECRET, startPveHarness, type PveHarness } from '../src/simulators/pve/harness';

/**
 * 10,000 VMs across 7 nodes: `/cluster/resources` lists every one of them with the right node and status, and the
 * pool token still sees only its pool. (How fast that is, is `bench/pve-resources.ts`'s business, not a test's.)
 */
let h: PveHarness;
before(async () => {
  h = await startPveHarness({ timing: zeroTiming, seed: generateSeed({ nodes: 7, vms: 10_000, tokenSecret: HARNESS_SECRET, rootTokenSecret: HARNESS_ROOT_SECRET }) });
});
after(() => h.close());

test('/cluster/resources lists 10,000 VMs on 7 nodes; the pool token sees exactly its half', async () => {
  const all = (await h.call('GET', '/cluster/resources?type=vm', { as: 'root' })).body!.data as { vmid: number; node: string; status: string }[];
  assert.equal(all.length, 10_001);
  const byNode = new Map<string, number>();
  for (const vm of all) byNode.set(vm.node, (byNode.get(vm.node) ?? 0) + 1);
  assert.equal(byNode.size, 7);
  assert.equal(all.filter((v) => v.status === 'running').length, 2_500);
  const pool = (await h.call('GET', '/cluster/resources?type=vm')).body!.data as { vmid: number }[];
  assert.equal(pool.length, 5_001, 'every other generated VM plus the template');
  assert.equal((await h.call('GET', '/cluster/nextid')).body!.data, '100');
});
