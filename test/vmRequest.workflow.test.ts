import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker, type WorkflowBundle } from '@temporalio/worker';
import { loadConfig } from '../src/config';
import { deviceRequestSchema, type DeviceRequest } from '../src/domain/deviceRequest';
import { simulatorTimings } from '../src/embedded/simulatorTimings';
import { referencePath } from '../src/reference';
import { startSimulatedWorld, type SimulatedWorld } from '../src/simulators/world';
import { requireTemporalBinary } from '../src/temporal/binaries';
import { registerSearchAttributes } from '../src/temporal/searchAttributes';
import { createActivityDeps, createWorker } from '../src/worker';
import { approveUpdate, completeUpdate, rejectUpdate, statusQuery } from '../src/workflows/messages';
import { vmRequest } from '../src/workflows';
import { startSshd, type RunningSshd } from './support/sshd';
import { waitFor } from './support/waitFor';

/**
 * vmRequest on Temporal's time-skipping test server, with the real activities against the simulated Proxmox VE and
 * NetBird, and snippets uploaded over SFTP to a real OpenSSH sshd on 127.0.0.1.
 */
const missingReference = !referencePath('pve-api-schema.json') || !referencePath('netbird-openapi.yml');
if (missingReference && process.env.CI) throw new Error('reference data missing in CI: the simulators would run unvalidated');

const DAY = 24 * 3600_000;

describe('vmRequest workflow (time-skipping)', { skip: missingReference && 'reference data (../shared/reference) absent' }, () => {
  let env: TestWorkflowEnvironment;
  let bundle: WorkflowBundle;
  let world: SimulatedWorld;
  let sshd: RunningSshd | undefined;
  let dir: string;
  let skipReason: string | undefined;

  before(async () => {
    const started = await startSshd();
    if ('skipped' in started) {
      skipReason = started.skipped;
      return;
    }
    sshd = started;
    dir = mkdtempSync(join(tmpdir(), 'pveflow-wf-'));
    world = await startSimulatedWorld({
      dir,
      timing: simulatorTimings.fast,
      externalSsh: { host: sshd.host, port: sshd.port, username: sshd.username, privateKey: sshd.privateKey, hostKeyFingerprint: sshd.hostKeyFingerprint, dir: sshd.dir },
    });
    env = await TestWorkflowEnvironment.createTimeSkipping({
      server: { executable: { type: 'existing-path', path: requireTemporalBinary('temporal-test-server') } },
    });
    await registerSearchAttributes(env.connection, 'default');
    bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../src/workflows') });
  });

  after(async () => {
    await env?.teardown();
    await world?.stop();
    await sshd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A worker on its own task queue with the real activities, for one test. */
  async function withWorker<T>(taskQueue: string, fn: () => Promise<T>): Promise<T> {
    const config = loadConfig({ ...world.env, SIM_TIMING: 'fast' });
    const deps = createActivityDeps(config);
    const worker: Worker = await createWorker({ connection: env.nativeConnection, namespace: 'default', taskQueue, deps, workflowBundle: bundle });
    try {
      return await worker.runUntil(fn());
    } finally {
      await deps.pve.close();
      await deps.netbird.close();
    }
  }

  /** A request whose period starts now on the test server's clock (which time skipping moves ahead of the wall clock). */
  async function request(serial: string, periodDays: number): Promise<DeviceRequest> {
    const start = (await env.currentTimeMs()) - 60_000;
    return deviceRequestSchema.parse({
      serial,
      name: 'lab',
      org: 'Acme Corp',
      requester: 'rita@acme.example',
      consultants: ['alice@consultancy.example'],
      period: { start: new Date(start).toISOString(), end: new Date(start + periodDays * DAY).toISOString() },
      cores: 2,
      memoryMiB: 2048,
    });
  }

  test('approve → build → fulfilled → complete leaves nothing behind; snippet went over a real sshd', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const serial = 'VM-WF2A1';
    await withWorker(`wf-${serial}`, async () => {
      const handle = await env.client.workflow.start(vmRequest, {
        workflowId: `vm-request-${serial}`,
        taskQueue: `wf-${serial}`,
        args: [{ request: await request(serial, 30) }],
      });
      assert.equal((await handle.query(statusQuery)).status, 'Pending');
      await assert.rejects(handle.executeUpdate(completeUpdate, { args: [{ by: 'x' }] }), (err: Error) =>
        /cannot complete request VM-WF2A1: it is Pending/.test(String((err.cause as Error | undefined)?.message)),
      );
      assert.equal((await handle.executeUpdate(approveUpdate, { args: [{ by: 'admin' }] })).status, 'Approved');

      const fulfilled = await waitFor('Fulfilled', async () => {
        const r = await handle.query(statusQuery);
        if (r.status === 'Failed') throw new Error(JSON.stringify(r.build));
        return r.status === 'Fulfilled' ? r : undefined;
      });
      const { vmid, node } = fulfilled.device;
      assert.ok(world.pve.dump().vms.some((v) => v.vmid === vmid && v.node === node && v.status === 'running'));
      assert.equal(readdirSync(sshd!.dir).filter((f) => f.includes(serial.toLowerCase())).length, 1, 'snippet written by sshd');

      await handle.executeUpdate(completeUpdate, { args: [{ by: 'rita' }] });
      const record = await handle.result();
      assert.equal(record.status, 'Completed');
      assert.deepEqual(record.leftovers, []);
      assert.ok(!world.pve.dump().vms.some((v) => v.vmid === vmid));
      assert.equal(readdirSync(sshd!.dir).filter((f) => f.includes(serial.toLowerCase())).length, 0, 'snippet removed');
      assert.equal(world.netbird.dump().peers.filter((p) => p.name.includes(serial.toLowerCase())).length, 0);
      assert.deepEqual(
        record.timeline.map((e) => e.event.split(':')[0]),
        ['submitted by rita@acme.example', 'approved', 'build 1', 'build 1', 'build 1', 'build 1 completed', 'completion requested', 'completing on request', 'completed; nothing left behind'],
      );
    });
  });

  test('the lease ends by itself at the end of the period (30 days, skipped)', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const serial = 'VM-WF2A2';
    await withWorker(`wf-${serial}`, async () => {
      const handle = await env.client.workflow.start(vmRequest, {
        workflowId: `vm-request-${serial}`,
        taskQueue: `wf-${serial}`,
        args: [{ request: await request(serial, 30) }],
      });
      await handle.executeUpdate(approveUpdate, { args: [{ by: 'admin' }] });
      const before = await env.currentTimeMs();
      const record = await handle.result(); // the test server skips the 30-day timer once the build is done
      assert.equal(record.status, 'Completed');
      assert.ok((await env.currentTimeMs()) - before >= 29 * DAY, 'time was skipped to the period end');
      assert.ok(record.timeline.some((e) => e.event === 'the period ended'));
      assert.equal(world.pve.dump().vms.filter((v) => String(v.config.description ?? '').includes(serial)).length, 0);
    });
  });

  test('a rejected request builds nothing', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const serial = 'VM-WF2A3';
    await withWorker(`wf-${serial}`, async () => {
      const handle = await env.client.workflow.start(vmRequest, {
        workflowId: `vm-request-${serial}`,
        taskQueue: `wf-${serial}`,
        args: [{ request: await request(serial, 1) }],
      });
      const vmsBefore = world.pve.dump().vms.length;
      await handle.executeUpdate(rejectUpdate, { args: [{ by: 'admin', reason: 'no budget' }] });
      const record = await handle.result();
      assert.equal(record.status, 'Rejected');
      assert.equal(world.pve.dump().vms.length, vmsBefore);
    });
  });
});
