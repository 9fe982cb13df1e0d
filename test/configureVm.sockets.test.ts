import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../src/activities';
import { PveClient, waitForTask } from '../src/clients/pve';
import { loadConfig } from '../src/config';
import { simulatorTimings } from '../src/embedded/simulatorTimings';
import { startSimulatedWorld, type SimulatedWorld } from '../src/simulators/world';
import { closeActivityDeps, createActivityDeps } from '../src/worker';

/**
 * A template with two sockets: Proxmox gives a VM sockets × cores vCPUs, and the cluster listing (`maxcpu`), the
 * sync's size and a snapshot's revert count them so. The build sets `cores` to what the request asks for, so it must
 * set one socket too, or the VM has twice the vCPUs asked for and the sync records a doubled size.
 */
describe('configureVm on a clone of a two-socket template (simulated Proxmox)', () => {
  let world: SimulatedWorld;
  let dir: string;
  let root: PveClient;
  let deps: ReturnType<typeof createActivityDeps>;
  let acts: ReturnType<typeof createActivities>;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pveflow-sockets-'));
    world = await startSimulatedWorld({
      dir,
      // The listing shows a VM's stats without pvestatd's lag: what is read here is its size, not when it appears.
      timing: { ...simulatorTimings.fast, resourcesLagMs: 0 },
      adjustSeed: (seed) => {
        const template = seed.vms.find((vm) => vm.vmid === 9000)!;
        template.config = { ...template.config, cores: 2, sockets: 2 };
      },
    });
    root = new PveClient({ endpoint: world.env.PVE_ENDPOINT, tokenId: world.rootToken.id, tokenSecret: world.rootToken.secret, ca: readFileSync(world.env.PVE_CA_FILE), timeoutMs: 10_000 });
    deps = createActivityDeps(loadConfig(world.env));
    deps.settings.pollMinMs = 20;
    deps.settings.pollMaxMs = 200;
    acts = createActivities(deps);
  });
  after(async () => {
    if (deps) await closeActivityDeps(deps);
    await root?.close();
    await world?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

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
