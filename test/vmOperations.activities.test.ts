import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { z } from 'zod';
import { PveClient, waitForTask } from '../src/clients/pve';
import { simulatorTimings } from '../src/embedded/simulatorTimings';
import type { SimulatedWorld } from '../src/simulators/world';
import { createActivities } from '../src/activities';
import { loadConfig } from '../src/config';
import { closeActivityDeps, createActivityDeps } from '../src/worker';
import { pveflowRole } from '../src/domain/pveflowPrivileges';
import { startActivityWorld, type ActivityWorld } from './support/activityWorld';

/**
 * The day-2 activities against the simulated Proxmox, which answers as PVE does (reference §4.9–4.16): each does what
 * it says, finds what an earlier attempt did, and ends once the VM is where it was asked to be. The guest here takes
 * 2.5 s to shut down, so a 1 s bound meets a guest that ignores the shutdown.
 */
const NO_SNAPSHOT = { id: 'nosnap@pve!automation', secret: '4f1d2c3b-0000-4000-8000-00000000d2d2' };

describe('day-2 activities against the simulated Proxmox', () => {
  let world: SimulatedWorld;
  let root: PveClient;
  let acts: ActivityWorld['acts'];
  let stopWorld: (() => Promise<void>) | undefined;
  let nextVmid = 3100;

  before(async () => {
    ({
      world,
      root,
      acts,
      stop: stopWorld,
    } = await startActivityWorld('day2', {
      timing: { ...simulatorTimings.fast, shutdownMs: 2_500, snapshotMs: 20, migrateMs: 40 },
      // A token holding the documented role without VM.Snapshot, granted where docs/operations.md grants it.
      adjustSeed: (seed) => {
        seed.users.push({ userid: 'nosnap@pve' });
        seed.tokens.push({ tokenid: NO_SNAPSHOT.id, secret: NO_SNAPSHOT.secret, privsep: true });
        seed.roles = { ...seed.roles, PVEflowNoSnapshot: pveflowRole(9).filter((p) => p !== 'VM.Snapshot') };
        for (const path of ['/pool/pveflow', '/storage/local', '/storage/ceph', '/sdn/zones/localnetwork/vmbr0']) {
          for (const subject of ['nosnap@pve', NO_SNAPSHOT.id]) seed.acls.push({ path, subject, role: 'PVEflowNoSnapshot', propagate: false });
        }
      },
    }));
  });
  after(async () => stopWorld?.());

  const run = <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A) => new MockActivityEnvironment().run(fn, ...args) as Promise<R>;
  const ok = async (upid: Promise<string>) => assert.ok((await waitForTask(root, await upid, { minPollMs: 20 })).ok);

  /** A full clone of the template in pveflow's pool on pve1, configured with `config`, running unless said otherwise. */
  async function vm(config: Record<string, string> = {}, running = true) {
    const vmid = nextVmid++;
    await ok(root.cloneVm('pve1', 9000, { newid: vmid, name: `day2-${vmid}`, pool: 'pveflow', full: true }));
    if (Object.keys(config).length) await ok(root.updateVmConfig('pve1', vmid, config));
    if (running) await ok(root.vmPower('pve1', vmid, 'start'));
    return { serial: 'VM-DAY201', vmid, node: 'pve1' };
  }
  const status = async (ref: { vmid: number; node: string }) => (await root.vmStatus(ref.node, ref.vmid)).status;

  test('power: a graceful shutdown, a stop of a stopped VM that does nothing, a reboot of a stopped VM that starts it', async () => {
    const ref = await vm();
    assert.deepEqual(await run(acts.shutdownGuest, { ...ref, timeoutSeconds: 10 }), { power: 'stopped', outcome: 'the guest shut down' });
    assert.equal(await status(ref), 'stopped');
    assert.equal(await run(acts.stopVm, ref), 'stopped');
    assert.deepEqual(await run(acts.shutdownGuest, { ...ref, timeoutSeconds: 10 }), { power: 'stopped', outcome: 'the VM was already stopped' });
    assert.deepEqual(await run(acts.rebootVm, { ...ref, timeoutSeconds: 10 }), { power: 'running', outcome: 'the VM was stopped: started' });
    assert.equal(await status(ref), 'running');
    assert.equal(await run(acts.stopVm, ref), 'stopped');
    assert.equal(await status(ref), 'stopped');
  });

  test('power: a guest that ignores the shutdown (or the reboot) past its bound is stopped (and started)', async () => {
    const ref = await vm();
    assert.deepEqual(await run(acts.shutdownGuest, { ...ref, timeoutSeconds: 1 }), { power: 'stopped', outcome: 'the guest did not shut down within 1 s: stopped' });
    assert.equal(await status(ref), 'stopped');
    await ok(root.vmPower('pve1', ref.vmid, 'start'));
    const before = (await root.vmStatus('pve1', ref.vmid)).pid;
    assert.deepEqual(await run(acts.rebootVm, { ...ref, timeoutSeconds: 1 }), { power: 'running', outcome: 'the guest did not restart within 1 s: stopped and started' });
    const after = await root.vmStatus('pve1', ref.vmid);
    assert.equal(after.status, 'running');
    assert.notEqual(after.pid, before, 'a new QEMU process: the VM was really restarted');
  });

  test('reconfigure: the default hotplug makes new cores wait for a reboot, which applies them; the disk grows live', async () => {
    const ref = await vm();
    const plan = await run(acts.planReconfigure, { ...ref, cores: 4, diskGiB: 8 });
    assert.deepEqual(plan.afterReboot, ['cores 2 → 4']);
    assert.equal(plan.rebootNeeded, "CPU hot-plug is off in the VM's hotplug option");
    assert.deepEqual(plan.grow, { disk: 'scsi0', sizeGiB: 8 });
    assert.deepEqual(await run(acts.applyVmConfig, { ...ref, set: plan.set, remove: plan.remove }), { pending: ['cores'] });
    assert.equal((await root.vmConfig('pve1', ref.vmid)).raw.cores, 4, 'the default view shows what is about to be');
    await run(acts.growDisk, { ...ref, diskGiB: 8 });
    assert.match(String((await root.vmConfig('pve1', ref.vmid)).raw.scsi0), /size=8G/);
    assert.equal((await run(acts.rebootVm, { ...ref, timeoutSeconds: 10 })).outcome, 'rebooted');
    assert.deepEqual(await run(acts.pendingConfig, ref), [], 'the reboot applied the pending cores');
    // Asking again for what the VM now is: nothing to do.
    const again = await run(acts.planReconfigure, { ...ref, cores: 4, diskGiB: 8 });
    assert.deepEqual([again.set, again.live, again.afterReboot, again.rebootNeeded], [{}, [], [], undefined]);
    const shrink = await run(acts.planReconfigure, { ...ref, diskGiB: 2 });
    assert.equal(shrink.refusal?.field, 'diskGiB');
  });

  test('reconfigure: with cpu and memory hot-plug on a NUMA guest, CPUs and memory change live with nothing pending', async () => {
    const ref = await vm({ hotplug: 'network,disk,cpu,memory', numa: '1', cores: '8', vcpus: '2' });
    const plan = await run(acts.planReconfigure, { ...ref, cores: 4, memoryMiB: 4096 });
    assert.deepEqual(plan.set, { vcpus: '4', memory: '4096' });
    assert.equal(plan.rebootNeeded, undefined);
    assert.deepEqual(await run(acts.applyVmConfig, { ...ref, set: plan.set, remove: plan.remove }), { pending: [] });
    const current = await root.call('GET', `/nodes/pve1/qemu/${ref.vmid}/config`, { current: 1 }, z.record(z.string(), z.unknown()));
    assert.equal(current.vcpus, 4);
    assert.equal(String(current.memory), '4096');
  });

  test('snapshots: taken with RAM, taken again as a no-op, reverted (the guest resumes), deleted once', async () => {
    const ref = await vm();
    assert.deepEqual(await run(acts.createSnapshot, { ...ref, name: 'before', withRam: true }), { withRam: true });
    assert.deepEqual(await run(acts.createSnapshot, { ...ref, name: 'before', withRam: true }), { withRam: true }, 'found: not taken twice');
    const list = await root.snapshots('pve1', ref.vmid);
    assert.deepEqual(
      list.map((s) => [s.name, s.vmstate]),
      [
        ['before', true],
        ['current', undefined],
      ],
    );
    await ok(root.updateVmConfig('pve1', ref.vmid, { description: 'changed after the snapshot' }));
    assert.deepEqual(
      await run(acts.revertSnapshot, { ...ref, name: 'before', start: true }),
      { power: 'running', size: { cores: 2, memoryMiB: 2048, diskGiB: 4 } },
      'the size the restored config gives (the record and the quota follow it)',
    );
    assert.equal((await root.vmConfig('pve1', ref.vmid)).description, undefined, 'the config is back as it was');
    assert.equal(await run(acts.deleteSnapshot, { ...ref, name: 'before' }), 'deleted');
    assert.equal(await run(acts.deleteSnapshot, { ...ref, name: 'before' }), 'absent');
    assert.deepEqual(
      (await root.snapshots('pve1', ref.vmid)).map((s) => s.name),
      ['current'],
    );
  });

  test('migrate: a running VM moves online and keeps running; asked again, it is already there and nothing moves', async () => {
    const ref = await vm();
    assert.deepEqual(await run(acts.moveVm, { serial: ref.serial, vmid: ref.vmid, from: 'pve1', to: 'pve2' }), { online: true });
    assert.equal((await root.vmStatus('pve2', ref.vmid)).status, 'running');
    // A retry after the move: nothing is moved again, and the answer still says how it moved.
    assert.deepEqual(await run(acts.moveVm, { serial: ref.serial, vmid: ref.vmid, from: 'pve1', to: 'pve2' }), { online: true });
    assert.equal(world.pve.dump().tasks.filter((t) => t.type === 'qmigrate' && t.id === String(ref.vmid)).length, 1);
    await assert.rejects(run(acts.moveVm, { serial: ref.serial, vmid: ref.vmid, from: 'pve2', to: 'pve9' }), (err: unknown) => {
      assert.ok(err instanceof ApplicationFailure, String(err));
      assert.equal(err.nonRetryable, true, 'no retry makes a node appear');
      assert.match(err.message, /cannot migrate the VM of request VM-DAY201 \(VM \d+\) to pve9: no such node in the cluster \(nodes: pve1, pve2, pve3\)/);
      return true;
    });
  });

  test('a token whose role lacks VM.Snapshot fails the snapshot at once, naming the privilege and how to grant it', async () => {
    const ref = await vm();
    const lacking = createActivityDeps(loadConfig({ ...world.env, PVE_TOKEN_ID: NO_SNAPSHOT.id, PVE_TOKEN_SECRET: NO_SNAPSHOT.secret }));
    try {
      await assert.rejects(run(createActivities(lacking).createSnapshot, { ...ref, name: 'denied', withRam: false }), (err: unknown) => {
        assert.ok(err instanceof ApplicationFailure, String(err));
        assert.equal(err.type, 'PvePermissionDenied');
        assert.equal(err.nonRetryable, true);
        assert.match(err.message, /taking snapshot denied for request VM-DAY201, VM \d+, node pve1: Proxmox said "Permission check failed/);
        assert.match(err.message, /Grant VM\.Snapshot: add it to the PVEflow role/);
        return true;
      });
    } finally {
      await closeActivityDeps(lacking);
    }
  });

  test('power on an HA-managed VM: the HA stack acts after its task has ended, and the activity waits until it has', async () => {
    const ref = await vm();
    await root.addHaResource({ sid: `vm:${ref.vmid}`, state: 'started' });
    assert.deepEqual(await run(acts.shutdownGuest, { ...ref, timeoutSeconds: 10 }), { power: 'stopped', outcome: 'the guest shut down' });
    assert.equal(await status(ref), 'stopped', 'stopped when the activity answered, not later');
    assert.ok(
      world.pve.dump().tasks.some((t) => t.type === 'hastop' && t.id === String(ref.vmid)),
      'through the HA stack',
    );
    assert.deepEqual(await run(acts.rebootVm, { ...ref, timeoutSeconds: 10 }), { power: 'running', outcome: 'the VM was stopped: started' });
    assert.equal(await status(ref), 'running');
  });

  test('migrate an HA-managed VM: its hamigrate task ends at once, and the activity waits until the VM is on the target', async () => {
    const ref = await vm();
    await root.addHaResource({ sid: `vm:${ref.vmid}`, state: 'started' });
    assert.deepEqual(await run(acts.moveVm, { serial: ref.serial, vmid: ref.vmid, from: 'pve1', to: 'pve3' }), { online: true });
    assert.equal(world.pve.dump().vms.find((v) => v.vmid === ref.vmid)?.node, 'pve3', 'there when the activity answered');
    assert.ok(
      world.pve.dump().tasks.some((t) => t.type === 'hamigrate' && t.id === String(ref.vmid)),
      'through the HA stack',
    );
  });
});
