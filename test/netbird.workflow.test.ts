import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { standingGroupName } from '../src/activities/netbird/standingGroups';
import { vpnObjectsOf } from '../src/domain/vpnObjects';
import { completeUpdate } from '../src/contracts/messages';
import { requestDriver } from './support/requestDriver';
import { useWorkflowHarness } from './support/workflowHarness';
import { waitFor } from './support/waitFor';

/** NetBird misbehaving under whole requests: cleanup goes on and says what it left; a 429 storm costs no build. */

describe('NetBird failures across whole requests', () => {
  const harness = useWorkflowHarness();

  test('completion with NetBird down still deletes the VM and lists exactly what was left in NetBird', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const serial = 'VM-NB001';
    const world = await harness.h.world();
    await harness.h.withWorker(world, `nb-${serial}`, async () => {
      const { handle, waitForStatus } = await requestDriver(harness.h.env.client, `nb-${serial}`).startApproved(await harness.h.request(serial));
      const fulfilled = await waitForStatus('Fulfilled');
      world.netbird.faults.set({ down: 'unavailable' });
      await handle.executeUpdate(completeUpdate, { args: [{ by: 'admin' }] });
      const record = await handle.result();

      assert.equal(record.status, 'Completed');
      assert.ok(!world.pve.dump().vms.some((v) => v.vmid === fulfilled.device.vmid), 'the VM is deleted although NetBird is down');
      const expected = vpnObjectsOf(serial, 'lab');
      assert.equal(record.leftovers.length, expected.length);
      expected.forEach((object, i) => assert.ok(record.leftovers[i]!.startsWith(`${object} (NetBird unreachable`), record.leftovers[i]));
      assert.match(record.timeline.at(-1)!.event, /completed; left behind: NetBird peer lab-vm-nb001/);
      // They really are still there, as the record says.
      const nb = world.netbird.dump();
      assert.deepEqual(
        nb.groups.filter((g) => g.name.includes(serial)).map((g) => g.name),
        [`device-${serial}`],
      );
      assert.equal(nb.policies.filter((p) => p.name.includes(serial)).length, 1);
      assert.equal(nb.peers.filter((p) => p.name === 'lab-vm-nb001').length, 1);
    });
  });

  test("a 429 storm from NetBird's rate limiter during 20 parallel builds costs no build", async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const world = await harness.h.world();
    world.netbird.faults.set({ rateLimit: { requestsPerSecond: 8, burst: 8 } });
    const serials = Array.from({ length: 20 }, (_, i) => `VM-NS${String(i).padStart(3, '0')}`);
    const server = await harness.h.localEnv(); // real time and real concurrency: nothing here needs skipped time
    await harness.h.withWorker(
      world,
      'nb-storm',
      async () => {
        const requests = requestDriver(server.client, 'nb-storm');
        const driven = await Promise.all(serials.map(async (serial) => requests.startApproved(await harness.h.request(serial, {}, server))));
        const handles = driven.map((r) => r.handle);
        const statuses = await waitFor(
          'all 20 builds to finish',
          async () => {
            const all = await Promise.all(driven.map((r) => r.record()));
            return all.every((r) => r.status === 'Fulfilled' || r.status === 'Failed') ? all : undefined;
          },
          240_000,
          1_000,
        );
        const failed = statuses.filter((r) => r.status === 'Failed').map((r) => `${r.serial}: ${r.build?.error}`);
        assert.deepEqual(failed, [], 'no build failed');
        const refused = world.netbird.callCounts();
        assert.ok(Object.values(refused).reduce((a, b) => a + b, 0) > 0);
        const nb = world.netbird.dump();
        for (const serial of serials) {
          assert.equal(nb.peers.filter((p) => p.name.includes(serial.toLowerCase())).length, 1, `${serial}: one peer`);
          assert.equal(nb.policies.filter((p) => p.name.includes(serial)).length, 1, `${serial}: one policy`);
        }
        // The consultant got one standing group, carries it, and every request's policy is from exactly that one.
        const standing = ['alice@consultancy.example'].map((email) => {
          const groups = nb.groups.filter((g) => g.name === standingGroupName(email));
          assert.equal(groups.length, 1, `one standing group for ${email}`);
          assert.ok(nb.users.find((u) => u.email === email)!.auto_groups.includes(groups[0]!.id), `${email} carries it`);
          return groups[0]!.id;
        });
        assert.equal(nb.groups.filter((g) => g.name.startsWith('consultants-VM-NS')).length, 0, 'no per-request consultants group');
        for (const serial of serials) {
          const [policy] = nb.policies.filter((p) => p.name.includes(serial));
          assert.deepEqual(policy!.rules[0]!.sources?.map((g) => g.id).sort(), [...standing].sort(), `${serial}: from the standing groups`);
        }
        world.netbird.faults.reset();
        await Promise.all(handles.map((hd) => hd.executeUpdate(completeUpdate, { args: [{ by: 'admin' }] })));
        await Promise.all(handles.map((hd) => hd.result()));
      },
      server,
    );
  });
});
