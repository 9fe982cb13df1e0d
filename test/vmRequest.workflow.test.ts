import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { before, describe, test } from 'node:test';
import type { SimulatedWorld } from '../src/simulators/world';
import { completeUpdate, rejectUpdate } from '../src/contracts/messages';
import { DAY, useWorkflowHarness } from './support/workflowHarness';
import { requestDriver } from './support/requestDriver';

/**
 * vmRequest on Temporal's time-skipping test server, with the real activities against the simulated Proxmox VE and
 * NetBird, and snippets uploaded over SFTP to a real OpenSSH sshd on 127.0.0.1.
 */

describe('vmRequest workflow (time-skipping)', () => {
  const harness = useWorkflowHarness();
  let world: SimulatedWorld;

  before(async () => {
    if (!harness.skipped) world = await harness.h.world();
  });

  test('approve → build → fulfilled → complete leaves nothing behind; snippet went over a real sshd', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const serial = 'VM-WF2A1';
    await harness.h.withWorker(world, `wf-${serial}`, async () => {
      const { handle, approve, record: recordNow, waitForStatus } = await requestDriver(harness.h.env.client, `wf-${serial}`).startPending(await harness.h.request(serial, { diskGiB: 10 }));
      assert.equal((await recordNow()).status, 'Pending');
      await assert.rejects(handle.executeUpdate(completeUpdate, { args: [{ by: 'x' }] }), (err: Error) => /cannot complete request VM-WF2A1: it is Pending/.test(String((err.cause as Error | undefined)?.message)));
      assert.equal((await approve('admin')).status, 'Approved');

      const fulfilled = await waitForStatus('Fulfilled');
      const { vmid, node } = fulfilled.device;
      const vm = world.pve.dump().vms.find((v) => v.vmid === vmid && v.node === node && v.status === 'running');
      assert.ok(vm, `VM ${vmid} running on ${node}`);
      const b64 = (x: string) => Buffer.from(x).toString('base64');
      assert.match(String(vm.config.smbios1), new RegExp(`serial=${b64(serial)}`));
      assert.match(String(vm.config.smbios1), new RegExp(`manufacturer=${b64('pveflow')}.*base64=1`));
      assert.match(String(vm.config.net0), /^virtio=[0-9A-F:]{17},bridge=vmbr0$/);
      assert.equal(vm.config.tags, `pveflow;${serial.toLowerCase()}`);
      assert.match(String(vm.config.scsi0), /size=10G/, 'the boot disk grew to the requested 10 GiB');
      assert.ok(String(vm.config.description).startsWith(`pveflow:serial=${serial}`));
      assert.equal(readdirSync(harness.h.sshd.dir).filter((f) => f.includes(serial.toLowerCase())).length, 1, 'snippet written by sshd');

      await handle.executeUpdate(completeUpdate, { args: [{ by: 'rita' }] });
      const record = await handle.result();
      assert.equal(record.status, 'Completed');
      assert.deepEqual(record.leftovers, []);
      assert.ok(!world.pve.dump().vms.some((v) => v.vmid === vmid));
      assert.equal(readdirSync(harness.h.sshd.dir).filter((f) => f.includes(serial.toLowerCase())).length, 0, 'snippet removed');
      assert.equal(world.netbird.dump().peers.filter((p) => p.name.includes(serial.toLowerCase())).length, 0);
      assert.deepEqual(
        record.timeline.map((e) => e.event.split(':')[0]),
        ['submitted by rita@acme.example', 'approved', 'build 1', 'build 1', 'build 1', 'build 1 completed', 'completion requested', 'completing on request', 'completed; nothing left behind'],
      );
    });
  });

  test('the lease ends by itself at the end of the period', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const serial = 'VM-WF2A2';
    // On the dev server, with a period that ends 40 s after it began: the time-skipping server's own skipping waits for
    // every workflow it holds to be idle, which the earlier tests' long-lived ones need not be.
    const local = await harness.h.localEnv();
    await harness.h.withWorker(
      world,
      `wf-${serial}`,
      async () => {
        const request = await harness.h.request(serial, { periodDays: 100_000 / DAY }, local);
        const { handle } = await requestDriver(local.client, `wf-${serial}`).startApproved(request);
        const record = await handle.result();
        assert.equal(record.status, 'Completed', JSON.stringify(record.timeline));
        assert.ok(Date.now() >= Date.parse(request.period.end), 'not before the period end');
        assert.ok(record.timeline.some((e) => e.event === 'the period ended'));
        assert.equal(world.pve.dump().vms.filter((v) => String(v.config.description ?? '').includes(serial)).length, 0);
      },
      local,
    );
  });

  test('a rejected request builds nothing', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const serial = 'VM-WF2A3';
    await harness.h.withWorker(world, `wf-${serial}`, async () => {
      const { handle } = await requestDriver(harness.h.env.client, `wf-${serial}`).startPending(await harness.h.request(serial, { periodDays: 1 }));
      const vmsBefore = world.pve.dump().vms.length;
      await handle.executeUpdate(rejectUpdate, { args: [{ by: 'admin', reason: 'no budget' }] });
      const record = await handle.result();
      assert.equal(record.status, 'Rejected');
      assert.equal(world.pve.dump().vms.length, vmsBefore);
    });
  });
});
