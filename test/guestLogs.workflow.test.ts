import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, test } from 'node:test';
import type { RequestRecord } from '../src/contracts/types';
import { requestDriver } from './support/requestDriver';
import { useWorkflowHarness } from './support/workflowHarness';

/**
 * A guest that gets an address but never joins NetBird fails the build at the stage that waited, with what the
 * guest's own log says as read through the agent — here the modelled guest, whose agent cannot read files: the
 * message must then say the log could not be read, and why — and the undo leaves nothing behind.
 */
describe('a guest that never joins NetBird', () => {
  const harness = useWorkflowHarness();

  test('fails the build at vpn-peer, saying why its cloud-init log could not be read, and leaves nothing behind', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const serial = 'VM-GL001';
    const slug = serial.toLowerCase();
    const world = await harness.h.world({}, { NETBIRD_PEER_WAIT_S: '2' });
    world.netbird.faults.set({ peersNeverRegister: true });
    const taskQueue = `guest-logs-${serial}`;
    const record: RequestRecord = await harness.h.withWorker(world, taskQueue, async () => {
      const { waitForStatus } = await requestDriver(harness.h.env.client, taskQueue).startApproved(await harness.h.request(serial));
      return waitForStatus(['Fulfilled', 'Failed'], { timeoutMs: 120_000 });
    });

    assert.equal(record.status, 'Failed');
    assert.equal(record.build?.stage, 'vpn-peer');
    const error = record.build?.error ?? '';
    assert.match(error, /did not join NetBird within 2 s \(NETBIRD_PEER_WAIT_S\)/);
    // The modelled guest's agent answers file-read with a 500 naming the simulator: the message passes that on.
    assert.match(error, /cloud-init log \(\/var\/log\/cloud-init-output\.log\) could not be read through the guest agent: .*guest-file-read.*simulated guest agent does not implement it/, error);

    assert.deepEqual(record.build?.leftovers ?? [], [], 'the undo reports nothing left');
    assert.deepEqual(
      world.pve.dump().vms.filter((v) => String(v.config.description ?? '').includes(serial) || String(v.name ?? '').includes(slug)),
      [],
      'no VM left',
    );
    assert.deepEqual(
      readdirSync(harness.h.sshd.dir).filter((f) => f.includes(slug)),
      [],
      'no snippet left',
    );
    const nb = world.netbird.dump();
    assert.deepEqual(
      [...nb.groups, ...nb.setupKeys, ...nb.policies].map((o) => o.name).filter((name) => name.includes(serial) || name.includes(slug)),
      [],
      'no NetBird group, setup key or policy left',
    );
  });
});
