import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { standingGroupName } from '../src/activities/netbird/standingGroups';
import { simulatorTimings } from '../src/embedded/simulatorTimings';
import type { PveTiming } from '../src/simulators/pve';
import { startSimulatedWorld, type SimulatedWorld } from '../src/simulators/world';
import { requireTemporalBinary } from '../src/temporal/binaries';
import { completeUpdate } from '../src/contracts/messages';
import { searchAttributeDefinitions } from '../src/contracts/searchAttributes';
import { deviceRequest, requestDriver } from './support/requestDriver';
import { waitFor } from './support/waitFor';

/**
 * A worker process killed with SIGKILL in the middle of a build, then restarted: the build resumes where it was
 * (the clone's UPID was heartbeated; NetBird objects are found by name) and ends with exactly one of everything.
 * Real time on the dev server: the killed activity is noticed through its 30 s heartbeat timeout, as in production.
 */

describe('a worker killed mid-build', () => {
  let env: TestWorkflowEnvironment;
  const cleanups: Array<() => Promise<void> | void> = [];

  before(async () => {
    env = await TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path: requireTemporalBinary('temporal') }, searchAttributes: searchAttributeDefinitions },
    });
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c();
    await env?.teardown();
  });

  async function world(timing: Partial<PveTiming>): Promise<SimulatedWorld> {
    const dir = mkdtempSync(join(tmpdir(), 'pveflow-crash-'));
    const w = await startSimulatedWorld({ dir, timing: { ...simulatorTimings.fast, ...timing } });
    cleanups.push(async () => {
      await w.stop();
      rmSync(dir, { recursive: true, force: true });
    });
    return w;
  }

  /** `tsx src/worker.ts` in its own process, configured for the simulated world through the environment alone. */
  function workerProcess(w: SimulatedWorld, taskQueue: string): ChildProcess {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/worker.ts'], {
      cwd: resolve(__dirname, '..'),
      env: { PATH: process.env.PATH, ...w.env, TEMPORAL_ADDRESS: env.address, TEMPORAL_TASK_QUEUE: taskQueue },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    cleanups.push(() => void child.kill('SIGKILL'));
    return child;
  }

  async function killed(child: ChildProcess): Promise<void> {
    const exit = new Promise((ok) => child.once('exit', ok));
    child.kill('SIGKILL');
    await exit;
  }

  /** A request whose period runs one day from now, approved: the worker process builds it at once. */
  const startRequest = (serial: string, taskQueue: string) => requestDriver(env.client, taskQueue).startApproved(deviceRequest(serial, { name: 'crash', periodDays: 1 }));
  /** Worker restarts take their time: wait long, look often. */
  const patiently = { timeoutMs: 120_000, everyMs: 100 };

  function vmsOf(w: SimulatedWorld, serial: string) {
    return w.pve.dump().vms.filter((v) => String(v.config.description ?? '').includes(serial) || String(v.name ?? '').includes(serial.toLowerCase()));
  }

  test('SIGKILL during the clone: after a restart the build waits on the same Proxmox task and makes exactly one VM', async () => {
    const serial = 'VM-CR001';
    const taskQueue = `crash-${serial}`;
    const w = await world({ linkedCloneMs: 8_000 });
    const first = workerProcess(w, taskQueue);
    const r = await startRequest(serial, taskQueue);
    await r.waitForBuildStage('cloning', patiently);
    await waitFor('the clone task to run in Proxmox', async () => (w.pve.dump().tasks.some((t) => t.type === 'qmclone' && t.status === 'running') ? true : undefined));
    await killed(first);
    workerProcess(w, taskQueue);

    const record = await r.waitForStatus('Fulfilled', { timeoutMs: 180_000, everyMs: 500 });
    const vms = vmsOf(w, serial);
    assert.equal(vms.length, 1, `exactly one VM for ${serial}: ${JSON.stringify(vms.map((v) => v.vmid))}`);
    assert.equal(vms[0]!.vmid, record.device.vmid);
    assert.equal(w.pve.dump().tasks.filter((t) => t.type === 'qmclone').length, 1, 'the clone was started once');

    await r.handle.executeUpdate(completeUpdate, { args: [{ by: 'admin' }] });
    assert.equal((await r.handle.result()).status, 'Completed');
    assert.equal(vmsOf(w, serial).length, 0);
  });

  test('SIGKILL during the NetBird step: after a restart there is exactly one peer, one device group and one policy', async () => {
    const serial = 'VM-CR002';
    const taskQueue = `crash-${serial}`;
    const w = await world({ agentStartMs: 1_000 });
    const first = workerProcess(w, taskQueue);
    const r = await startRequest(serial, taskQueue);
    await r.waitForBuildStage('waiting-for-ip', patiently);
    w.netbird.faults.set({ latencyMs: 4_000 }); // holds the NetBird step open long enough to kill the worker in it
    await r.waitForBuildStage('vpn-peer', patiently);
    await killed(first);
    w.netbird.faults.reset();
    workerProcess(w, taskQueue);

    await r.waitForStatus('Fulfilled', { timeoutMs: 180_000, everyMs: 500 });
    const nb = w.netbird.dump();
    assert.equal(nb.peers.filter((p) => p.name.includes(serial.toLowerCase())).length, 1);
    assert.deepEqual(
      nb.groups.filter((g) => g.name.includes(serial)).map((g) => g.name),
      [`device-${serial}`],
    );
    const alice = nb.groups.filter((g) => g.name === standingGroupName('alice@consultancy.example'));
    assert.equal(alice.length, 1, "one standing group for the consultant, whichever worker's attempt made it");
    const policies = nb.policies.filter((p) => p.name.includes(serial));
    assert.equal(policies.length, 1);
    assert.deepEqual(
      policies[0]!.rules[0]!.sources?.map((g) => g.id),
      [alice[0]!.id],
    );
    assert.equal(nb.setupKeys.filter((k) => k.name.includes(serial)).length, 1);
    assert.equal(vmsOf(w, serial).length, 1);

    await r.handle.executeUpdate(completeUpdate, { args: [{ by: 'admin' }] });
    assert.deepEqual((await r.handle.result()).leftovers, []);
  });
});
