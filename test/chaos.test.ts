import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { deviceRequestSchema } from '../src/domain/deviceRequest';
import { simulatorTimings } from '../src/embedded/simulatorTimings';
import { startSimulatedWorld, type SimulatedWorld } from '../src/simulators/world';
import { requireTemporalBinary } from '../src/temporal/binaries';
import { vmRequest } from '../src/workflows';
import { approveUpdate, completeUpdate, statusQuery } from '../src/workflows/messages';
import { searchAttributeDefinitions } from '../src/workflows/searchAttributes';
import { DAY, harnessSkipReason } from './support/workflowHarness';
import { waitFor } from './support/waitFor';

/**
 * Chaos: BUILDS builds (default 20; PVEFLOW_CHAOS_BUILDS overrides) while the worker process is SIGKILLed at random
 * moments and restarted. Afterwards every request is fulfilled, the cluster holds exactly one VM per request and no
 * other, NetBird one peer per request; after completion nothing of any request is left.
 */
const skip = harnessSkipReason();
const BUILDS = Number(process.env.PVEFLOW_CHAOS_BUILDS ?? 20);
const KILLS = Number(process.env.PVEFLOW_CHAOS_KILLS ?? 3);

describe('chaos: worker killed at random during many builds', { skip }, () => {
  let env: TestWorkflowEnvironment;
  let world: SimulatedWorld;
  let dir: string;
  let worker: ChildProcess | undefined;
  const taskQueue = 'chaos';

  before(async () => {
    env = await TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path: requireTemporalBinary('temporal') }, searchAttributes: searchAttributeDefinitions },
    });
    dir = mkdtempSync(join(tmpdir(), 'pveflow-chaos-'));
    world = await startSimulatedWorld({ dir, timing: { ...simulatorTimings.fast, linkedCloneMs: 600, startMs: 300, agentStartMs: 800 } });
  });
  after(async () => {
    worker?.kill('SIGKILL');
    await world?.stop();
    await env?.teardown();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function startWorker(): ChildProcess {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/worker.ts'], {
      cwd: resolve(__dirname, '..'),
      env: { PATH: process.env.PATH, ...world.env, TEMPORAL_ADDRESS: env.address, TEMPORAL_TASK_QUEUE: taskQueue, SYNC_INTERVAL_S: '3600' },
      stdio: ['ignore', 'ignore', 'ignore'],
    });
    return child;
  }

  async function kill(child: ChildProcess): Promise<void> {
    const exited = new Promise((ok) => child.once('exit', ok));
    child.kill('SIGKILL');
    await exited;
  }

  const pveflowVms = () => world.pve.dump().vms.filter((v) => String(v.config.description ?? '').startsWith('pveflow:serial='));

  test(`${BUILDS} builds survive ${KILLS} SIGKILLs of the worker with exactly one VM each`, async () => {
    worker = startWorker();
    const start = Date.now() - 60_000;
    const serials = Array.from({ length: BUILDS }, (_, i) => `VM-CH${String(i).padStart(3, '0')}`);
    const handles = await Promise.all(
      serials.map(async (serial) => {
        const request = deviceRequestSchema.parse({ serial, name: 'chaos', org: 'Acme Corp', requester: 'rita@acme.example', consultants: ['alice@consultancy.example'], period: { start: new Date(start).toISOString(), end: new Date(start + 30 * DAY).toISOString() }, cores: 1, memoryMiB: 1024 });
        const handle = await env.client.workflow.start(vmRequest, { workflowId: `vm-request-${serial}`, taskQueue, args: [{ request }] });
        await handle.executeUpdate(approveUpdate, { args: [{ by: 'admin' }] });
        return handle;
      }),
    );

    // Kill at random moments while the builds run, restarting right away.
    for (let k = 0; k < KILLS; k++) {
      await sleep(3_000 + Math.random() * 6_000);
      await kill(worker);
      worker = startWorker();
    }

    const records = await waitFor(
      'every request to be fulfilled',
      async () => {
        const all = await Promise.all(handles.map((h) => h.query(statusQuery)));
        const failed = all.filter((r) => r.status === 'Failed');
        if (failed.length) throw new Error(`failed: ${failed.map((r) => `${r.serial}: ${r.build?.error}`).join('; ')}`);
        return all.every((r) => r.status === 'Fulfilled') ? all : undefined;
      },
      600_000,
      2_000,
    );

    const vms = pveflowVms();
    assert.equal(vms.length, BUILDS, `exactly ${BUILDS} pveflow VMs, found ${vms.length}`);
    const recorded = new Set(records.map((r) => r.device.vmid));
    assert.deepEqual(vms.map((v) => v.vmid).filter((id) => !recorded.has(id)), [], 'no VMID leaked: every VM belongs to a request');
    for (const r of records) {
      assert.equal(vms.filter((v) => String(v.config.description).startsWith(`pveflow:serial=${r.serial}`)).length, 1, `${r.serial}: one VM`);
    }
    const peers = world.netbird.dump().peers.filter((p) => p.name.startsWith('chaos-vm-ch'));
    assert.equal(peers.length, BUILDS, 'one NetBird peer per request');

    await Promise.all(handles.map((h) => h.executeUpdate(completeUpdate, { args: [{ by: 'admin' }] })));
    const done = await Promise.all(handles.map((h) => h.result()));
    assert.ok(done.every((r) => r.status === 'Completed' && r.leftovers.length === 0));
    assert.equal(pveflowVms().length, 0, 'the cluster is empty again');
    const nb = world.netbird.dump();
    assert.equal(nb.peers.filter((p) => p.name.startsWith('chaos-vm-ch')).length, 0);
    assert.equal(nb.groups.filter((g) => g.name.includes('VM-CH')).length, 0);
    assert.equal(nb.policies.filter((p) => p.name.includes('VM-CH')).length, 0);
    assert.equal(nb.setupKeys.filter((k) => k.name.includes('VM-CH')).length, 0);
  });
});
