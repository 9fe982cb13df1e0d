import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment, TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, type WorkflowBundle } from '@temporalio/worker';
import { z } from 'zod';
import { createActivities } from '../src/activities';
import { PveClient, waitForTask } from '../src/clients/pve';
import { loadConfig } from '../src/config';
import { deviceNames } from '../src/domain/deviceNames';
import { simulatorTimings } from '../src/embedded/simulatorTimings';
import { startSimulatedWorld, type SimulatedWorld } from '../src/simulators/world';
import { requireTemporalBinary } from '../src/temporal/binaries';
import { closeActivityDeps, createActivityDeps, createWorker } from '../src/worker';
import { clusterSync } from '../src/workflows';
import { completeUpdate } from '../src/contracts/messages';
import { searchAttributeDefinitions } from '../src/contracts/searchAttributes';
import { deviceRequest, requestDriver } from './support/requestDriver';
import { waitFor } from './support/waitFor';

/**
 * The cloud-init snippet follows its VM. Proxmox reads `cicustom` from the VM's own node at every start, so a VM
 * migrated behind pveflow's back cannot start again until its snippet is on the new node; and a snippet left on the
 * old node would stay there forever. Each simulated node here has its own snippets directory behind its own SFTP
 * endpoint (a shared sshd would make every node one directory and hide the bug), and the sync runs on a dev server
 * (it finds the requests through visibility).
 */
const NODES = ['pve1', 'pve2', 'pve3'];

describe('the snippet follows a migrated VM', () => {
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
    dir = mkdtempSync(join(tmpdir(), 'pveflow-follow-'));
    world = await startSimulatedWorld({ dir, timing: simulatorTimings.fast });
    root = new PveClient({ endpoint: world.env.PVE_ENDPOINT, tokenId: world.rootToken.id, tokenSecret: world.rootToken.secret, ca: readFileSync(world.env.PVE_CA_FILE), timeoutMs: 10_000 });
  });
  after(async () => {
    await root?.close();
    await world?.stop();
    await env?.teardown();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const snippetOn = (node: string, serial: string) => existsSync(join(world.snippetsDirOf(node), deviceNames(serial, 'follow').snippetFile));
  const nodesWithSnippet = (serial: string) => NODES.filter((n) => snippetOn(n, serial));

  test('migrated out of band, seen by the sync, restarted through pveflow and completed: nothing is left on any node', async () => {
    const taskQueue = 'follow-test';
    const serial = 'VM-FL001';
    // The sync sees the requests of its own instance: this task queue's.
    const deps = createActivityDeps(loadConfig({ ...world.env, TEMPORAL_TASK_QUEUE: taskQueue }));
    const ownClient = deps.temporal.client;
    deps.temporal.client = env.client;
    deps.settings.pollMinMs = 20;
    deps.settings.pollMaxMs = 200;
    const worker = await createWorker({ connection: env.nativeConnection, namespace: 'default', taskQueue, deps, workflowBundle: bundle });
    try {
      await worker.runUntil(async () => {
        const { handle, waitForStatus, record: recordNow } = await requestDriver(env.client, taskQueue).startApproved(deviceRequest(serial, { name: 'follow', cores: 1, memoryMiB: 1024 }));
        const built = await waitForStatus('Fulfilled');
        const vmid = built.device.vmid!;
        const from = built.device.node!;
        assert.deepEqual(nodesWithSnippet(serial), [from]);
        await waitFor('visible with its VM', async () => {
          for await (const _ of env.client.workflow.list({ query: `WorkflowId = 'vm-request-${serial}' AND VmId IS NOT NULL` })) return true;
          return undefined;
        });

        // An operator stops the VM and migrates it to another node; the snippet stays behind, as it would on real Proxmox.
        const to = NODES.find((n) => n !== from)!;
        const done = async (upid: Promise<string>) => assert.ok((await waitForTask(root, await upid, { minPollMs: 20 })).ok);
        await done(root.vmPower(from, vmid, 'stop'));
        await done(root.call('POST', `/nodes/${from}/qemu/${vmid}/migrate`, { target: to }, z.string()));
        assert.deepEqual(nodesWithSnippet(serial), [from], 'before the sync, the snippet is where the VM was built');

        const sync = await env.client.workflow.execute(clusterSync, { workflowId: `cluster-sync-${serial}`, taskQueue });
        assert.ok(
          sync.drifts.some((d) => d.serial === serial && d.drift.kind === 'moved'),
          JSON.stringify(sync.drifts),
        );
        const record = await waitFor('the snippet followed', async () => {
          const r = await recordNow();
          return r.timeline.some((e) => e.event === `cloud-init snippet moved from ${from} to ${to}`) ? r : undefined;
        });
        assert.equal(record.device.node, to);
        assert.deepEqual(nodesWithSnippet(serial), [to], 'copied to the new node, removed from the old one');

        // Restarted through pveflow's own start activity: Proxmox reads the snippet on the new node.
        await new MockActivityEnvironment().run(createActivities(deps).startVm, { serial, vmid, node: to });
        const status = await root.vmStatus(to, vmid);
        assert.equal(status.status, 'running');

        await handle.executeUpdate(completeUpdate, { args: [{ by: 'admin' }] });
        const final = await handle.result();
        assert.equal(final.status, 'Completed');
        assert.deepEqual(final.leftovers, []);
        assert.equal(
          world.pve.dump().vms.some((v) => v.vmid === vmid),
          false,
        );
        assert.deepEqual(nodesWithSnippet(serial), [], 'no snippet on any node');
      });
    } finally {
      deps.temporal.client = ownClient;
      await closeActivityDeps(deps);
    }
  });

  test('a completion that cannot remove a copy of the snippet records it as left behind, naming the node', async () => {
    const taskQueue = 'follow-leftover';
    const serial = 'VM-FL003';
    // pve3's host key no longer matches (a reinstalled node): pveflow refuses to talk to it, without retrying.
    const fingerprints = world.env.SSH_HOST_FINGERPRINTS.split(',')
      .map((e) => (e.startsWith('pve3=') ? `pve3=SHA256:${'A'.repeat(43)}` : e))
      .join(',');
    const deps = createActivityDeps(loadConfig({ ...world.env, SSH_HOST_FINGERPRINTS: fingerprints, PVE_NODE_SELECTOR: 'pve1,pve2' }));
    const ownClient = deps.temporal.client;
    deps.temporal.client = env.client;
    deps.settings.pollMinMs = 20;
    deps.settings.pollMaxMs = 200;
    const worker = await createWorker({ connection: env.nativeConnection, namespace: 'default', taskQueue, deps, workflowBundle: bundle });
    try {
      await worker.runUntil(async () => {
        const { handle, waitForStatus } = await requestDriver(env.client, taskQueue).startApproved(deviceRequest(serial, { name: 'follow', cores: 1, memoryMiB: 1024 }));
        const built = await waitForStatus('Fulfilled');
        // A copy on pve3, as a migration there and back whose copy could not be removed would leave it.
        const file = deviceNames(serial, 'follow').snippetFile;
        mkdirSync(world.snippetsDirOf('pve3'), { recursive: true });
        copyFileSync(join(world.snippetsDirOf(built.device.node!), file), join(world.snippetsDirOf('pve3'), file));

        await handle.executeUpdate(completeUpdate, { args: [{ by: 'admin' }] });
        const final = await handle.result();
        assert.equal(final.status, 'Completed');
        assert.equal(final.leftovers.length, 1, JSON.stringify(final.leftovers));
        assert.match(final.leftovers[0]!, new RegExp(`^cloud-init snippet ${file.replace(/\./g, '\\.')} \\(SFTP to node pve3 for request ${serial}: `));
        assert.deepEqual(nodesWithSnippet(serial), ['pve3'], 'removed where it could be, and still there where the record says');
      });
    } finally {
      deps.temporal.client = ownClient;
      await closeActivityDeps(deps);
    }
  });

  test('removing a snippet looks on every node, and a node it cannot reach fails the removal naming that node', async () => {
    const deps = createActivityDeps(loadConfig(world.env));
    try {
      const serial = 'VM-FL002';
      const file = deviceNames(serial, 'follow').snippetFile;
      // Copies on two nodes, as a migration whose snippet was copied by hand but never removed would leave them.
      for (const node of ['pve1', 'pve3']) {
        mkdirSync(world.snippetsDirOf(node), { recursive: true });
        copyFileSync(__filename, join(world.snippetsDirOf(node), file));
      }
      const acts = createActivities(deps);
      assert.equal(await new MockActivityEnvironment().run(acts.removeSnippet, { serial, name: 'follow', node: 'pve2' }), 'removed');
      assert.deepEqual(nodesWithSnippet(serial), []);
      assert.equal(await new MockActivityEnvironment().run(acts.removeSnippet, { serial, name: 'follow', node: 'pve2' }), 'absent');

      copyFileSync(__filename, join(world.snippetsDirOf('pve3'), file));
      const unreachable = createActivities({
        ...deps,
        sftpTarget: (node) => (node === 'pve3' ? { ...deps.sftpTarget(node), port: 1, timeoutMs: 2_000 } : deps.sftpTarget(node)),
      });
      await assert.rejects(new MockActivityEnvironment().run(unreachable.removeSnippet, { serial, name: 'follow', node: 'pve1' }), (err: unknown) => {
        assert.ok(err instanceof ApplicationFailure, String(err));
        assert.match(err.message, /SFTP to node pve3 for request VM-FL002/);
        return true;
      });
      assert.deepEqual(nodesWithSnippet(serial), ['pve3'], 'still there: the completion records it as left behind');
    } finally {
      await closeActivityDeps(deps);
    }
  });
});
