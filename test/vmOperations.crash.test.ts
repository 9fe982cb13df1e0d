import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { deviceNames } from '../src/domain/deviceNames';
import { simulatorTimings } from '../src/embedded/simulatorTimings';
import { startSimulatedWorld, type SimulatedWorld } from '../src/simulators/world';
import { requireTemporalBinary } from '../src/temporal/binaries';
import { migrateUpdate } from '../src/contracts/messages';
import { searchAttributeDefinitions } from '../src/contracts/searchAttributes';
import { deviceRequest, requestDriver } from './support/requestDriver';
import { waitFor } from './support/waitFor';

/**
 * A worker process killed with SIGKILL in the middle of a day-2 migration, then restarted: the operation finishes
 * (the migration task's UPID was heartbeated, so the retry waits on it instead of starting a second one), the snippet
 * follows, and the caller still gets its answer. Real time on the dev server: the killed activity is noticed through
 * its 30 s heartbeat timeout, as in production.
 */

describe('a worker killed mid-operation', () => {
  let env: TestWorkflowEnvironment;
  let world: SimulatedWorld;
  let dir: string;
  const children: ChildProcess[] = [];

  before(async () => {
    env = await TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path: requireTemporalBinary('temporal') }, searchAttributes: searchAttributeDefinitions },
    });
    dir = mkdtempSync(join(tmpdir(), 'pveflow-day2-crash-'));
    // The migration takes 8 s: long enough to kill the worker while Proxmox works on it.
    world = await startSimulatedWorld({ dir, timing: { ...simulatorTimings.fast, migrateMs: 8_000 } });
  });
  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    await world?.stop();
    await env?.teardown();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function workerProcess(taskQueue: string): ChildProcess {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/worker.ts'], {
      cwd: resolve(__dirname, '..'),
      env: { PATH: process.env.PATH, ...world.env, CREDENTIAL_KEYS_DIR: join(dir, 'keys'), TEMPORAL_ADDRESS: env.address, TEMPORAL_TASK_QUEUE: taskQueue },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    children.push(child);
    return child;
  }

  test('a migration under way when its worker dies is finished by the next worker, with one migration task', async () => {
    const serial = 'VM-CRSH1';
    const taskQueue = 'day2-crash';
    const first = workerProcess(taskQueue);
    const request = await requestDriver(env.client, taskQueue).startApproved(deviceRequest(serial, { name: 'crash' }));
    const { handle } = request;
    const built = await request.waitForStatus('Fulfilled', { timeoutMs: 120_000 });
    const from = built.device.node!;
    const to = ['pve1', 'pve2', 'pve3'].find((n) => n !== from)!;

    const answer = handle.executeUpdate(migrateUpdate, { args: [{ id: 'move-1', by: 'olga@ops.example', role: 'operator', target: to }] });
    await waitFor('the migration running in Proxmox', async () => (world.pve.dump().tasks.some((t) => t.type === 'qmigrate' && t.status === 'running') ? true : undefined));
    const exit = new Promise((ok) => first.once('exit', ok));
    first.kill('SIGKILL');
    await exit;
    workerProcess(taskQueue);

    const result = await answer;
    assert.equal(result.operation.state, 'succeeded', JSON.stringify(result.operation));
    assert.equal(result.operation.outcome, `moved online from ${from} to ${to}; cloud-init snippet moved to ${to}`);
    assert.equal(world.pve.dump().tasks.filter((t) => t.type === 'qmigrate').length, 1, 'the migration was started once');
    assert.equal(world.pve.dump().vms.find((v) => v.vmid === built.device.vmid)?.node, to);
    const file = deviceNames(serial, 'crash').snippetFile;
    assert.deepEqual([existsSync(join(world.snippetsDirOf(from), file)), existsSync(join(world.snippetsDirOf(to), file))], [false, true]);
    await handle.terminate('test over');
  });
});
