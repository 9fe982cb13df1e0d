import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ClusterSeed } from '../src/simulators/pve';
import type { SimulatedWorld } from '../src/simulators/world';
import { completeUpdate } from '../src/contracts/messages';
import type { RequestRecord } from '../src/contracts/types';
import { createLocalTemplate } from './support/localTemplate';
import { useWorkflowHarness } from './support/workflowHarness';
import { requestDriver } from './support/requestDriver';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/config';
import { closeActivityDeps, createActivityDeps } from '../src/worker';
import { placementActivities } from '../src/activities/proxmox/placement';

/**
 * Where a build puts its VM and what it adds around it: storage space for full clones, templates on a node's local
 * storage (proxmox-behaviour.md §4.8, §6.4, §6.10), and HA resources (§4.17) with their undo.
 */

describe('vmBuild placement, local templates and HA', () => {
  const harness = useWorkflowHarness();
  let n = 0;

  interface BuildOptions {
    /** Extra environment; `world` may fill in what only exists once the world does (the root token). */
    env?: (world: SimulatedWorld) => Record<string, string>;
    prepare?: (w: SimulatedWorld) => void | Promise<void>;
    fullClone?: boolean;
    templateVmid?: number;
    /** The image's template per node, as the intake resolves it for an image imported onto local storage. */
    imageTemplates?: Array<{ node: string; vmid: number }>;
    consultants?: string[];
    /** Checks made while the request is fulfilled, before its completion. */
    whileFulfilled?: (world: SimulatedWorld, record: RequestRecord) => void;
  }

  /** Builds one request in a fresh world; once fulfilled it is completed again. Returns the settled record. */
  async function build(opts: BuildOptions) {
    const serial = `VM-PL${String(++n).padStart(3, '0')}`;
    // The harness reads a world's extra environment when its worker starts, so it may be filled in after creation.
    const env: Record<string, string> = {};
    const world = await harness.h.world({}, env);
    Object.assign(env, opts.env?.(world));
    await opts.prepare?.(world);
    const taskQueue = `placement-${serial}`;
    return harness.h.withWorker(world, taskQueue, async () => {
      const request = await harness.h.request(serial, {
        fullClone: opts.fullClone,
        templateVmid: opts.templateVmid,
        ...(opts.imageTemplates ? { imageTemplates: opts.imageTemplates } : {}),
        ...(opts.consultants ? { consultants: opts.consultants } : {}),
      });
      const { handle, waitForStatus } = await requestDriver(harness.h.env.client, taskQueue).startApproved(request);
      const record: RequestRecord = await waitForStatus(['Fulfilled', 'Failed'], { timeoutMs: 120_000 });
      const vmsAtSettle = ownVms(world, serial);
      if (record.status === 'Fulfilled') {
        opts.whileFulfilled?.(world, record);
        await handle.executeUpdate(completeUpdate, { args: [{ by: 'admin' }] });
        await handle.result();
      }
      return { serial, record, vmsAtSettle, vmsAtEnd: ownVms(world, serial), world };
    });
  }

  const ownVms = (world: SimulatedWorld, serial: string) => world.pve.dump().vms.filter((v) => String(v.config.description ?? '').includes(serial) || v.lock === 'clone');

  const asRoot = (world: SimulatedWorld) => ({ PVE_TOKEN_ID: world.rootToken.id, PVE_TOKEN_SECRET: world.rootToken.secret });

  const localTemplateOnPve3 = (world: SimulatedWorld) => createLocalTemplate(world, 'pve3', LOCAL_TEMPLATE);
  const LOCAL_TEMPLATE = 9100;

  test('a full clone is refused at placement when the storage cannot hold the template disk; a linked clone needs no space', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const cephFull = (w: SimulatedWorld) => w.pve.faults.set({ noSpace: { storage: 'ceph' } });
    const full = await build({ fullClone: true, prepare: cephFull });
    assert.equal(full.record.status, 'Failed');
    assert.equal(full.record.build?.stage, 'choosing-node');
    const error = full.record.build?.error ?? '';
    assert.match(error, /4\.0 GiB on ceph for a full clone/);
    assert.match(error, /pve1: ceph \(0 MiB free < 4\.0 GiB needed\)/);
    assert.match(error, /PVE_TARGET_STORAGE or use a linked clone/);
    assert.equal(full.vmsAtSettle.length, 0, 'nothing was cloned');

    const linked = await build({ fullClone: false, prepare: cephFull });
    assert.equal(linked.record.status, 'Fulfilled', linked.record.build?.error);
  });

  test('a template on local storage of another node: the VM is cloned on the template node', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const { record, vmsAtEnd } = await build({ templateVmid: LOCAL_TEMPLATE, prepare: localTemplateOnPve3 });
    assert.equal(record.status, 'Fulfilled', record.build?.error);
    assert.equal(record.device.node, 'pve3');
    assert.equal(vmsAtEnd.length, 0, 'completion removed the VM');
  });

  /** An image with a template on each of pve1 and pve2, its disks on each node's local-lvm (an import onto local storage). */
  const perNode = [
    { node: 'pve1', vmid: 9101 },
    { node: 'pve2', vmid: 9102 },
  ];
  const perNodeTemplates = async (world: SimulatedWorld) => {
    for (const t of perNode) await createLocalTemplate(world, t.node, t.vmid);
  };
  /** The template a linked clone's disk is based on (`local-lvm:base-<vmid>-disk-0/vm-…`). */
  const baseOf = (world: SimulatedWorld, vmid: number) => Number(/base-(\d+)-disk/.exec(String(world.pve.dump().vms.find((v) => v.vmid === vmid)?.config.scsi0))?.[1]);
  /** A build of the per-node image where PVE_NODE_SELECTOR is `selector`, fulfilled: its record and its VM's template. */
  const buildPerNodeImage = async (selector: string) => {
    let base: number | undefined;
    const { record } = await build({
      templateVmid: 9101,
      imageTemplates: perNode,
      prepare: perNodeTemplates,
      env: () => ({ PVE_NODE_SELECTOR: selector }),
      whileFulfilled: (world, r) => (base = baseOf(world, r.device.vmid!)),
    });
    assert.equal(record.status, 'Fulfilled', record.build?.error);
    return { record, base };
  };

  test("an image with a template per node: the VM goes to a node holding one and is a linked clone of that node's template", async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const { record, base } = await buildPerNodeImage('pve1,pve2');
    const home = perNode.find((p) => p.node === record.device.node);
    assert.ok(home, `placed on ${record.device.node}, a node holding a template`);
    assert.equal(base, home.vmid, "cloned from that node's own template");
    assert.ok(!record.build?.log.some((l) => /migrat/.test(l.message)), 'no migration');
  });

  test("an image with a template per node, and the selector allowing only the second node: that node's template is cloned there", async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const { record, base } = await buildPerNodeImage('pve2');
    assert.equal(record.device.node, 'pve2');
    assert.equal(base, 9102);
  });

  test('an image template removed since the intake is no place: the build clones one that is there', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    let base: number | undefined;
    const { record } = await build({
      templateVmid: 9199,
      imageTemplates: [{ node: 'pve2', vmid: 9199 }, ...perNode],
      prepare: perNodeTemplates,
      env: () => ({ PVE_NODE_SELECTOR: 'pve2' }),
      whileFulfilled: (world, r) => (base = baseOf(world, r.device.vmid!)),
    });
    assert.equal(record.status, 'Fulfilled', record.build?.error);
    assert.equal(base, 9102);
  });

  test("placing an image with a template per node reads the cluster's resources once, and each template's config at most once", async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const world = await harness.h.world();
    const three = [...perNode, { node: 'pve3', vmid: 9103 }];
    for (const tpl of three) await createLocalTemplate(world, tpl.node, tpl.vmid);
    const keysDir = mkdtempSync(join(tmpdir(), 'pveflow-placement-keys-'));
    const deps = createActivityDeps(loadConfig({ ...world.env, CREDENTIAL_KEYS_DIR: keysDir, PVE_CLONE_LIMIT_PER_NODE: '1' }));
    try {
      const { planPlacement } = placementActivities(deps);
      const counted = async () => {
        const before = world.pve.callCounts();
        const plan = await planPlacement({ serial: 'VM-PLCALLS', memoryMiB: 1024, cores: 1, templateVmid: 9101, templates: three });
        const after = world.pve.callCounts();
        const delta = Object.fromEntries(Object.entries(after).flatMap(([k, v]) => (v !== (before[k] ?? 0) ? [[k, v - (before[k] ?? 0)]] : [])));
        return { plan, delta };
      };
      const first = await counted();
      assert.deepEqual(first.delta, { 'GET /cluster/resources': 1, 'GET /nodes/{node}/qemu/{vmid}/config': 3 }, 'one resources read, one config read per template');
      assert.deepEqual(first.plan.templates, { pve1: 9101, pve2: 9102, pve3: 9103 });
      const again = await counted();
      assert.deepEqual(again.delta, { 'GET /cluster/resources': 1 }, "the templates' configs come from the worker's cache");
    } finally {
      await closeActivityDeps(deps);
      rmSync(keysDir, { recursive: true, force: true });
    }
  });

  test('a template on local storage of a node the selector excludes: a full clone there, then a migration to a selected node', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    let disks: string[] = [];
    const { record, vmsAtEnd, world } = await build({
      templateVmid: LOCAL_TEMPLATE,
      prepare: localTemplateOnPve3,
      env: () => ({ PVE_NODE_SELECTOR: 'pve1,pve2' }),
      whileFulfilled: (w, r) => {
        const vm = w.pve.dump().vms.find((v) => v.vmid === r.device.vmid);
        disks = [vm?.config.scsi0 ?? ''];
      },
    });
    assert.equal(record.status, 'Fulfilled', record.build?.error);
    assert.ok(['pve1', 'pve2'].includes(record.device.node ?? ''), `placed on ${record.device.node}`);
    const messages = record.build?.log.map((l) => l.message) ?? [];
    assert.ok(messages.includes(`node ${record.device.node} chosen; the template's disks are local to pve3: a full clone there first, then a migration`), messages.join('\n'));
    assert.ok(messages.includes(`VM ${record.device.vmid} migrated to ${record.device.node}`));
    assert.match(disks[0]!, new RegExp(`^local-lvm:vm-${record.device.vmid}-disk-0`), 'a full copy, not a linked clone of the local base');
    const migrations = world.pve.dump().tasks.filter((t) => t.type === 'qmigrate');
    assert.equal(migrations.length, 1);
    assert.equal(migrations[0]!.exitstatus, 'OK');
    assert.equal(vmsAtEnd.length, 0, 'completion removed the VM from its new node');
  });

  test('a template on local storage of an excluded node, and no room anywhere for the full copy a migration needs: refused with the remedy', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    // local-lvm is full everywhere: no node could hold the full copy a migration needs.
    const prepare = async (w: SimulatedWorld) => {
      await localTemplateOnPve3(w);
      w.pve.faults.set({ noSpace: { storage: 'local-lvm' } });
    };
    const { record, vmsAtSettle } = await build({ templateVmid: LOCAL_TEMPLATE, prepare, env: () => ({ PVE_NODE_SELECTOR: 'pve1,pve2' }) });
    assert.equal(record.status, 'Failed');
    assert.equal(record.build?.stage, 'choosing-node');
    const error = record.build?.error ?? '';
    assert.match(error, new RegExp(`template ${LOCAL_TEMPLATE}, whose volumes are on local storage local-lvm of node pve3`));
    assert.match(error, /PVE_NODE_SELECTOR \(pve1,pve2\) excludes that node while no selected node has local-lvm with room to migrate the clone to/);
    assert.match(error, /Move the template's disks to shared storage/);
    assert.match(error, /add pve3 to PVE_NODE_SELECTOR/);
    assert.equal(vmsAtSettle.length, 0);
  });

  test('with HA on, the VM is an HA resource once built and no longer after completion', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    let vmid: number | undefined;
    const { record, world } = await build({
      env: (w) => ({ PVE_HA: 'true', ...asRoot(w) }),
      whileFulfilled: (w, r) => {
        vmid = r.device.vmid;
        assert.deepEqual(w.pve.dump().ha, [{ sid: `vm:${vmid}`, state: 'started' }]);
      },
    });
    assert.equal(record.status, 'Fulfilled', record.build?.error);
    assert.ok(record.build?.log.some((l) => l.message === `VM ${vmid} is an HA resource`));
    assert.deepEqual(world.pve.dump().ha, []);
    assert.ok(!world.pve.dump().vms.some((v) => v.vmid === vmid), 'the VM is gone');
  });

  test('with HA on, a build failing after the start removes the HA resource before destroying the VM', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const { record, vmsAtSettle, world } = await build({
      env: (w) => ({ PVE_HA: 'true', NETBIRD_MISSING_CONSULTANT: 'fail', ...asRoot(w) }),
      consultants: ['ghost@consultancy.example'],
    });
    assert.equal(record.status, 'Failed');
    assert.equal(record.build?.stage, 'vpn-access');
    const undone = (record.build?.log ?? []).filter((l) => l.message.startsWith('undone: ')).map((l) => l.message);
    assert.match(undone[0] ?? '', /^undone: HA resource vm:\d+$/, JSON.stringify(undone));
    assert.match(undone[2] ?? '', /^undone: VM \d+$/, JSON.stringify(undone));
    assert.deepEqual(record.build?.leftovers, []);
    assert.equal(vmsAtSettle.length, 0);
    assert.deepEqual(world.pve.dump().ha, []);
  });

  test('with HA on and a token without Sys.Console on /, the build fails saying which privilege, and leaves nothing', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const { record, vmsAtSettle, world } = await build({ env: () => ({ PVE_HA: 'true', PVE_HA_GROUP: 'lab' }) });
    assert.equal(record.status, 'Failed');
    assert.equal(record.build?.stage, 'starting');
    const error = record.build?.error ?? '';
    assert.match(error, /adding VM \d+ to HA group lab for request VM-PL\d+/);
    assert.match(error, /HA resources need Sys\.Console on \//);
    assert.match(error, /unsetting PVE_HA and PVE_HA_GROUP/);
    assert.deepEqual(record.build?.leftovers, []);
    assert.equal(vmsAtSettle.length, 0, 'the started VM was destroyed by the undo');
    assert.deepEqual(world.pve.dump().ha, []);
  });

  test('a class of 6 approved at once on 3 equal nodes spreads, 2 on each: builds choosing together account for each other', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    // The real-time server: six builds at once (the time-skipping one is not safe under many parallel workflows).
    const server = await harness.h.localEnv();
    const equal = (seed: ClusterSeed) => {
      seed.nodes = seed.nodes.map((n) => ({ ...n, cpu: 0.2, mem: 64 * 1024 ** 3 }));
    };
    const world = await harness.h.world({}, {}, equal);
    const taskQueue = 'placement-class';
    const records = await harness.h.withWorker(
      world,
      taskQueue,
      async () => {
        const driver = requestDriver(server.client, taskQueue);
        const requests = await Promise.all(Array.from({ length: 6 }, async (_, i) => driver.startApproved(await harness.h.request(`VM-SPR${String(i).padStart(2, '0')}`, {}, server))));
        // Failed is a settled answer here too: the assertion below names the build's error.
        return Promise.all(requests.map((r) => r.waitForStatus(['Fulfilled', 'Failed'], { timeoutMs: 180_000 })));
      },
      server,
    );
    for (const r of records) assert.equal(r.status, 'Fulfilled', `${r.serial}: ${r.build?.error}`);
    const perNode: Record<string, number> = {};
    for (const vm of world.pve.dump().vms.filter((v) => !v.template)) perNode[vm.node] = (perNode[vm.node] ?? 0) + 1;
    assert.deepEqual(perNode, { pve1: 2, pve2: 2, pve3: 2 });
  });
});
