import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { ActivityDeps } from '../src/activities/deps';
import { cloneActivities, type Cloned } from '../src/activities/proxmox/clone';
import { loadConfig } from '../src/config';
import { simulatorTimings } from '../src/embedded/simulatorTimings';
import { startSimulatedWorld, type SimulatedWorld } from '../src/simulators/world';
import { closeActivityDeps, createActivityDeps } from '../src/worker';
import { waitFor } from './support/waitFor';

/**
 * Proxmox adds a cloned VM to the request's pool only when the clone task ends (proxmox-behaviour.md §4.6): until then
 * pveflow's pool-scoped token cannot see the VM, let alone destroy it. A build cancelled mid-clone must therefore let
 * the clone finish before its undo runs, or the undo finds an invisible VM and leaves it behind.
 */
describe('cloneTemplate cancelled while Proxmox clones', () => {
  let dir: string;
  let world: SimulatedWorld;
  let deps: ActivityDeps;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pveflow-clone-cancel-'));
    world = await startSimulatedWorld({ dir, timing: { ...simulatorTimings.fast, linkedCloneMs: 1_500 } });
    deps = createActivityDeps(loadConfig(world.env));
    deps.settings.pollMinMs = 20;
    deps.settings.pollMaxMs = 200;
    deps.settings.cloneLimits = undefined; // no clone slots: this is about one clone and its task
  });

  after(async () => {
    await closeActivityDeps(deps);
    await world.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function cloneUntilRunning(serial: string, env: MockActivityEnvironment) {
    const template = (await deps.pve.clusterResources('vm')).find((r) => r.vmid === deps.settings.templateVmid);
    assert.ok(template?.node, 'the simulated cluster has the template');
    const vmid = await deps.pve.nextId();
    const clones = () => world.pve.dump().tasks.filter((t) => t.type === 'qmclone');
    const earlier = clones().length;
    const cloned: Promise<Cloned> = env.run(cloneActivities(deps).cloneTemplate, { serial, name: 'lab', vmid, node: template.node });
    cloned.catch(() => undefined); // awaited by the test
    const task = () => clones()[earlier];
    await waitFor(`the clone of VM ${vmid} running`, async () => (task()?.status === 'running' ? true : undefined));
    const visible = async () => (await deps.pve.clusterResources('vm')).some((r) => r.vmid === vmid);
    assert.equal(await visible(), false, 'a VM being cloned is outside the pool');
    return { vmid, cloned, task, visible };
  }

  test("an operator's cancel waits for the clone to end: the VM is then in the pool, where the undo finds it", async () => {
    const env = new MockActivityEnvironment({ attempt: 1 });
    const { vmid, cloned, task, visible } = await cloneUntilRunning('VM-CC001', env);
    env.cancel('CANCELLED');
    assert.equal((await cloned).vmid, vmid);
    assert.equal(task()?.exitstatus, 'OK');
    assert.equal(await visible(), true, 'the cancelled build can now destroy it');
  });

  test('a worker shutting down stops waiting at once: the retry resumes on the heartbeated task', async () => {
    const env = new MockActivityEnvironment({ attempt: 1 });
    const beats: Array<{ upid?: string } | undefined> = [];
    env.on('heartbeat', (d: { upid?: string } | undefined) => beats.push(d));
    const { cloned, task } = await cloneUntilRunning('VM-CC002', env);
    env.cancel('WORKER_SHUTDOWN');
    // The wait's abort, which the worker reports as the activity's cancellation.
    await assert.rejects(cloned, { name: 'AbortError' });
    assert.equal(task()?.status, 'running', 'the worker did not wait for the clone');
    assert.ok(
      beats.some((d) => d?.upid === task()?.upid),
      'the task was heartbeated for the retry',
    );
  });
});
