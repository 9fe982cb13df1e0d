import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MockActivityEnvironment } from '@temporalio/testing';
import { PveClient, waitForTask } from '../src/clients/pve';
import { simulatorTimings } from '../src/embedded/simulatorTimings';
import { startActivityWorld, type ActivityWorld } from './support/activityWorld';

/**
 * A template with two sockets: Proxmox gives a VM sockets × cores vCPUs, and the cluster listing (`maxcpu`), the
 * sync's size and a snapshot's revert count them so. The build sets `cores` to what the request asks for, so it must
 * set one socket too, or the VM has twice the vCPUs asked for and the sync records a doubled size.
 */
describe('configureVm on a clone of a two-socket template (simulated Proxmox)', () => {
  let root: PveClient;
  let acts: ActivityWorld['acts'];
  let stopWorld: (() => Promise<void>) | undefined;

  before(async () => {
    ({
      root,
      acts,
      stop: stopWorld,
    } = await startActivityWorld('sockets', {
      // The listing shows a VM's stats without pvestatd's lag: what is read here is its size, not when it appears.
      timing: { ...simulatorTimings.fast, resourcesLagMs: 0 },
      adjustSeed: (seed) => {
        const template = seed.vms.find((vm) => vm.vmid === 9000)!;
        template.config = { ...template.config, cores: 2, sockets: 2 };
      },
    }));
  });
  after(async () => stopWorld?.());

  const maxcpu = async (vmid: number) => (await root.clusterResources('vm')).find((r) => r.vmid === vmid)?.maxcpu;

  test('the VM gets the cores asked for on one socket, and the cluster lists that many vCPUs', async () => {
    // The simulator counts the template's sockets as Proxmox does: 2 × 2.
    assert.equal(await maxcpu(9000), 4);
    const vmid = 3300;
    assert.ok((await waitForTask(root, await root.cloneVm('pve1', 9000, { newid: vmid, name: 'sockets-3300', pool: 'pveflow', full: true }), { minPollMs: 20 })).ok);
    assert.equal((await root.vmConfig('pve1', vmid)).raw.sockets, 2, 'the clone has the template’s two sockets');

    await new MockActivityEnvironment().run(acts.configureVm, {
      serial: 'VM-SOCK01',
      name: 'sockets',
      org: 'acme',
      vmid,
      node: 'pve1',
      templateVmid: 9000,
      cores: 3,
      memoryMiB: 1024,
      snippetVolid: 'local:snippets/pveflow-VM-SOCK01.yaml',
    });

    const { raw } = await root.vmConfig('pve1', vmid);
    assert.equal(raw.cores, 3);
    assert.equal(raw.sockets, 1);
    assert.equal(await maxcpu(vmid), 3, 'the listing the sync reads counts the cores asked for, not twice as many');
  });
});
