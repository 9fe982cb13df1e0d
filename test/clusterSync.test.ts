import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { z } from 'zod';
import { bundleWorkflowCode, type WorkflowBundle } from '@temporalio/worker';
import { PveClient, waitForTask } from '../src/clients/pve';
import { loadConfig } from '../src/config';
import { simulatorTimings } from '../src/embedded/simulatorTimings';
import { startSimulatedWorld, type SimulatedWorld } from '../src/simulators/world';
import { requireTemporalBinary } from '../src/temporal/binaries';
import { closeActivityDeps, createActivityDeps, createWorker } from '../src/worker';
import { clusterSync } from '../src/workflows';
import { PveNodeKey, RequestStatusKey, searchAttributeDefinitions, VmIdKey, VmStateKey } from '../src/contracts/searchAttributes';
import { QUOTA_SIZE_MEMO } from '../src/contracts/memos';
import { IMAGE_IMPORT_TAG } from '../src/contracts/imageImport';
import { requestWorkflowId } from '../src/contracts/workflowIds';
import { sizeOf } from '../src/domain/quotaUsage';
import { defaultRequestPolicy } from '../src/domain/requestPolicyRules';
import { usageOf } from '../src/api/reads/quotaUse';
import type { ApiContext } from '../src/api/http/context';
import { deviceRequest, requestDriver } from './support/requestDriver';
import { waitFor } from './support/waitFor';

/**
 * clusterSync against a dev server (it finds the managed requests through visibility): an operator destroys one
 * request's VM, stops another's and migrates a third behind pveflow's back and leaves a VM of their own in the pool (beside an image
 * import's VM not yet a template, which is no orphan); one sync tells
 * each request exactly what changed, reports the orphan, lists the templates — and a second sync finds nothing new.
 */

describe('clusterSync', () => {
  let env: TestWorkflowEnvironment;
  let bundle: WorkflowBundle;
  let world: SimulatedWorld;
  let dir: string;
  let root: PveClient;

  before(async () => {
    env = await TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path: requireTemporalBinary('temporal') }, searchAttributes: searchAttributeDefinitions },
    });
    bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../src/workflows') });
    dir = mkdtempSync(join(tmpdir(), 'pveflow-sync-'));
    world = await startSimulatedWorld({ dir, timing: simulatorTimings.fast });
    root = new PveClient({ endpoint: world.env.PVE_ENDPOINT, tokenId: world.rootToken.id, tokenSecret: world.rootToken.secret, ca: readFileSync(world.env.PVE_CA_FILE), timeoutMs: 10_000 });
  });
  after(async () => {
    await root?.close();
    await world?.stop();
    await env?.teardown();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A worker on `taskQueue` whose activities see the simulated world and the dev server, for the time of `fn`. */
  async function withWorker(taskQueue: string, fn: () => Promise<void>): Promise<void> {
    const deps = createActivityDeps(loadConfig({ ...world.env, TEMPORAL_TASK_QUEUE: taskQueue }));
    const ownClient = deps.temporal.client;
    deps.temporal.client = env.client;
    deps.settings.pollMinMs = 20;
    deps.settings.pollMaxMs = 200;
    const worker = await createWorker({ connection: env.nativeConnection, namespace: 'default', taskQueue, deps, workflowBundle: bundle });
    try {
      await worker.runUntil(fn);
    } finally {
      deps.temporal.client = ownClient;
      await closeActivityDeps(deps);
    }
  }

  test('one sync run tells each request what changed, reports orphans, lists templates; the next finds nothing new', async () => {
    const taskQueue = 'sync-test';
    await withWorker(taskQueue, async () => {
      const requests = requestDriver(env.client, taskQueue);
      const fulfilled = async (serial: string) => {
        const driven = await requests.startApproved(deviceRequest(serial, { name: 'sync', cores: 1, memoryMiB: 1024 }));
        const r = await driven.waitForStatus('Fulfilled');
        return { ...driven, vmid: r.device.vmid!, node: r.device.node! };
      };
      const a = await fulfilled('VM-SY001');
      const b = await fulfilled('VM-SY002');
      const c = await fulfilled('VM-SY003');
      // Visibility catches up with the VmId of both before the sync looks.
      await waitFor('both requests visible with their VMs', async () => {
        let n = 0;
        for await (const _ of env.client.workflow.list({ query: `WorkflowType = 'vmRequest' AND VmId IS NOT NULL AND RequestStatus = 'Fulfilled'` })) n++;
        return n === 3 ? true : undefined;
      });

      // Behind pveflow's back: A's VM destroyed, B's VM stopped, a hand-made VM left in the pool.
      const done = async (upid: Promise<string>) => assert.ok((await waitForTask(root, await upid, { minPollMs: 20 })).ok);
      await done(root.vmPower(a.node, a.vmid, 'stop'));
      await done(root.destroyVm(a.node, a.vmid, { purge: true }));
      await done(root.vmPower(b.node, b.vmid, 'stop'));
      const elsewhere = ['pve1', 'pve2', 'pve3'].find((n) => n !== c.node)!;
      await done(root.call('POST', `/nodes/${c.node}/qemu/${c.vmid}/migrate`, { target: elsewhere, online: true }, z.string()));
      await done(root.cloneVm('pve1', 9000, { newid: 4242, name: 'hand-made', pool: 'pveflow' }));
      // An image import's VM between its creation and its template: tagged by the import, no orphan.
      await done(root.createVm('pve2', { vmid: 4343, name: 'image-mid-import', pool: 'pveflow', tags: IMAGE_IMPORT_TAG, scsi0: 'local-lvm:1' }));

      const result = await env.client.workflow.execute(clusterSync, { workflowId: 'cluster-sync-1', taskQueue });
      assert.deepEqual(result.drifts.map((d) => [d.serial, d.drift.kind]).sort(), [
        ['VM-SY001', 'vanished'],
        ['VM-SY002', 'state'],
        ['VM-SY003', 'moved'],
      ]);
      const moved = result.drifts.find((d) => d.serial === 'VM-SY003')!.drift;
      assert.deepEqual(moved, { kind: 'moved', vmid: c.vmid, from: c.node, to: elsewhere });
      assert.deepEqual(
        result.orphans.map((o) => o.vmid),
        [4242],
      );
      assert.equal(result.orphanCount, 1);
      assert.deepEqual(
        result.templates.map((t) => [t.vmid, t.name]),
        [[9000, 'debian-12-cloudinit']],
      );

      const recordA = await a.waitForStatus('Failed');
      assert.match(recordA.timeline.at(-1)!.event, new RegExp(`VM ${a.vmid} vanished from the cluster \\(last seen on ${a.node}\\); rebuild or complete the request`));
      // The record is true about a VM that is gone: one line says so, and nothing still points at the VM.
      assert.equal(recordA.timeline.filter((e) => /vanished/.test(e.event)).length, 1, JSON.stringify(recordA.timeline));
      for (const field of ['vmid', 'node', 'ip', 'vpnIp', 'vpnHostname'] as const) assert.equal(recordA.device[field], undefined, `device.${field} cleared`);
      await waitFor("A's search attributes cleared", async () => {
        const sa = (await a.handle.describe()).typedSearchAttributes;
        assert.equal(sa.get(RequestStatusKey), 'Failed');
        return sa.get(VmStateKey) === undefined && sa.get(VmIdKey) === undefined && sa.get(PveNodeKey) === undefined ? true : undefined;
      });
      const recordB = await b.record();
      assert.equal(recordB.status, 'Fulfilled');
      assert.ok(recordB.timeline.some((e) => e.event === `VM ${b.vmid} is stopped in the cluster`));
      assert.equal(recordB.drift?.kind, 'state');
      const recordC = await waitFor('C knows its new node', async () => {
        const r = await c.record();
        return r.device.node === elsewhere ? r : undefined;
      });
      assert.equal(recordC.status, 'Fulfilled');
      assert.ok(recordC.timeline.some((e) => e.event === `VM ${c.vmid} moved from ${c.node} to ${elsewhere} (migration or HA)`));

      await waitFor('B known stopped and C known moved in visibility', async () => {
        let known = 0;
        for await (const wf of env.client.workflow.list({ query: `WorkflowId = 'vm-request-VM-SY002' OR WorkflowId = 'vm-request-VM-SY003'` })) {
          if (wf.typedSearchAttributes.get(VmStateKey) === 'stopped' || wf.typedSearchAttributes.get(PveNodeKey) === elsewhere) known++;
        }
        return known === 2 ? true : undefined;
      });
      const again = await env.client.workflow.execute(clusterSync, { workflowId: 'cluster-sync-2', taskQueue });
      assert.deepEqual(again.drifts, [], 'a second run reports nothing already told');
      const events = (await env.client.workflow.getHandle('cluster-sync-2').fetchHistory()).events?.length ?? 0;
      assert.ok(events <= 12, `a sync run without drift stays a handful of events (${events})`);
    });
  });

  test('a VM resized in Proxmox behind pveflow: the sync makes the record and the quota use follow it', async () => {
    const taskQueue = 'sync-resize-test';
    await withWorker(taskQueue, async () => {
      const request = deviceRequest('VM-SY004', { name: 'grown', org: 'Resize Org', cores: 1, memoryMiB: 1024 });
      // Started as the API starts it: with the quota memo the org's use is counted from.
      await env.client.workflow.start('vmRequest', {
        workflowId: requestWorkflowId(request.serial),
        taskQueue,
        args: [{ request, policy: defaultRequestPolicy }],
        memo: { [QUOTA_SIZE_MEMO]: sizeOf(request) },
      });
      const driven = requestDriver(env.client, taskQueue).existing(request.serial);
      await driven.approve();
      const built = await driven.waitForStatus('Fulfilled');
      const { vmid, node } = built.device as { vmid: number; node: string };
      const ctx = { client: env.client, taskQueue, temporal: <R>(fn: () => Promise<R>) => fn() } as unknown as ApiContext;
      await waitFor('the request visible with its VM and its size', async () => {
        const use = await usageOf(ctx, 'Resize Org');
        let visible = 0;
        for await (const _ of env.client.workflow.list({ query: `WorkflowId = '${requestWorkflowId(request.serial)}' AND VmId IS NOT NULL AND RequestStatus = 'Fulfilled'` })) visible++;
        return visible === 1 && use.cores === 1 && use.memory_mib === 1024 ? true : undefined;
      });

      // Behind pveflow's back: 4 cores and 4 GiB set in Proxmox directly (the GUI, `qm set`), applied by a restart.
      const done = async (upid: Promise<string>) => assert.ok((await waitForTask(root, await upid, { minPollMs: 20 })).ok);
      await done(root.vmPower(node, vmid, 'stop'));
      await root.call('PUT', `/nodes/${node}/qemu/${vmid}/config`, { cores: 4, memory: '4096' }, z.unknown());
      await done(root.vmPower(node, vmid, 'start'));

      const result = await env.client.workflow.execute(clusterSync, { workflowId: 'cluster-sync-resize-1', taskQueue });
      // (A state drift may come beside it: the listing can lag the restart by a moment.)
      const drift = result.drifts.find((d) => d.serial === request.serial && d.drift.kind === 'resized')?.drift;
      assert.equal(drift?.kind, 'resized', JSON.stringify(result.drifts));
      assert.deepEqual(drift.kind === 'resized' ? [drift.size.cores, drift.size.memoryMiB] : [], [4, 4096]);

      const record = await waitFor('the record to follow Proxmox', async () => {
        const r = await driven.record();
        return r.request.cores === 4 ? r : undefined;
      });
      assert.equal(record.request.memoryMiB, 4096);
      assert.ok(
        record.timeline.some((e) => e.event === `VM ${vmid} was resized in Proxmox outside pveflow; the request now states its size: cores 1 → 4, memory 1024 → 4096 MiB`),
        JSON.stringify(record.timeline.slice(-3)),
      );
      // What the org holds is what it has: the quota use the API counts reads 4 cores and 4 GiB.
      await waitFor('the quota use to follow', async () => {
        const use = await usageOf(ctx, 'Resize Org');
        return use.cores === 4 && use.memory_mib === 4096 ? true : undefined;
      });

      const again = await env.client.workflow.execute(clusterSync, { workflowId: 'cluster-sync-resize-2', taskQueue });
      assert.deepEqual(
        again.drifts.filter((d) => d.serial === request.serial && d.drift.kind === 'resized'),
        [],
        'a second run finds the record true',
      );
      await driven.handle.executeUpdate('complete', { args: [{ by: 'admin' }] });
      await driven.handle.result();
    });
  });
});
