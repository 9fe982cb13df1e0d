import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { loadConfig } from '../src/config';
import { catalogueQuery } from '../src/contracts/imageCatalogueMessages';
import { hasTag, IMAGE_IMPORT_TAG, imageMarker, importStatusQuery, type ImageImportInput, type ImageImportResult } from '../src/contracts/imageImport';
import { imageCatalogueWorkflowId } from '../src/contracts/workflowIds';
import type { SimulatedWorld } from '../src/simulators/world';
import { closeActivityDeps, createActivityDeps } from '../src/worker';
import { useWorkflowHarness } from './support/workflowHarness';
import { waitFor } from './support/waitFor';

/**
 * The image import workflow against the simulated cluster with the real activities: Proxmox downloads what a server
 * on 127.0.0.1 serves (and verifies the checksum), the VM is made from the file with the settings a build expects,
 * becomes a template in the pool and an image of the catalogue. A checksum that does not match, a file that is not a
 * disk image, an empty one, or a cancel mid-download each end the import saying why, and leave nothing: no VM, no
 * file on the storage.
 */
const MiB = 1024 * 1024;

describe('image import', () => {
  const harness = useWorkflowHarness();
  let server: Server;
  let base: string;
  let dir: string;
  let qcow2: Buffer;
  /** Requests to /slow are held until the test lets them go (a download in flight to cancel). */
  const held: Array<() => void> = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pveflow-image-'));
    execFileSync('qemu-img', ['create', '-f', 'qcow2', join(dir, 'tiny.qcow2'), '3G'], { stdio: 'ignore' });
    qcow2 = readFileSync(join(dir, 'tiny.qcow2'));
    server = createServer((req, res) => {
      if (req.url === '/tiny.qcow2') return res.end(qcow2);
      if (req.url === '/empty.qcow2') return res.end();
      if (req.url === '/page.qcow2') return res.end('<html><body>not an image</body></html>'.repeat(64));
      if (req.url === '/slow.qcow2') {
        res.writeHead(200, { 'content-length': String(64 * MiB) });
        res.write(Buffer.alloc(MiB));
        held.push(() => res.destroy());
        return;
      }
      res.statusCode = 404;
      res.end();
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    for (const release of held) release();
    server?.closeAllConnections();
    await new Promise<void>((ok) => (server ? server.close(() => ok()) : ok()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The world's token may download onto `local` (Datastore.AllocateTemplate) and reach the network from pve1 and pve2. */
  const importingWorld = (env: Record<string, string> = {}) =>
    harness.h.world({}, env, (seed) => {
      seed.roles = { ...seed.roles, PVEflowImport: ['Sys.AccessNetwork'] };
      for (const subject of ['pveflow@pve', 'pveflow@pve!automation']) for (const node of ['pve1', 'pve2']) seed.acls.push({ path: `/nodes/${node}`, subject, role: 'PVEflowImport' });
    });
  const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const input = (name: string, path: string, checksum: string, overrides: Partial<ImageImportInput> = {}): ImageImportInput => ({
    name,
    os: 'Debian 12',
    minimum: { cores: 1, memoryMiB: 1024 },
    source: { url: `${base}${path}`, checksum, checksumAlgorithm: 'sha256', extension: 'qcow2' },
    node: 'pve1',
    downloadStorage: 'local',
    diskStorage: 'local-lvm',
    requestedBy: 'ops',
    ...overrides,
  });
  /** What is left of imports on the world: VMs carrying an image marker, and files in local's import content. */
  async function leftovers(world: SimulatedWorld, nodes = ['pve1']) {
    const deps = createActivityDeps(loadConfig({ ...world.env, CREDENTIAL_KEYS_DIR: join(dir, 'keys') }));
    try {
      const files: string[] = [];
      for (const node of nodes) files.push(...(await deps.pve.storageContent(node, 'local', 'import')).map((v) => `${node}/${v.volid}`));
      const vms = world.pve
        .dump()
        .vms.filter((v) => String(v.config.description ?? '').startsWith('pveflow:image='))
        .map((v) => v.vmid);
      return { files, vms };
    } finally {
      await closeActivityDeps(deps);
    }
  }

  test('an image downloaded, verified and made a template lands in the catalogue, with nothing else left on the storage', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const world = await importingWorld();
    const taskQueue = 'image-import-ok';
    await harness.h.withWorker(world, taskQueue, async () => {
      const handle = await harness.h.env.client.workflow.start('imageImport', { taskQueue, workflowId: 'image-import-debian', args: [input('debian-12-imported', '/tiny.qcow2', sha256(qcow2))] });
      const result = (await handle.result()) as { templateVmid: number; node: string };
      const vm = world.pve.dump().vms.find((v) => v.vmid === result.templateVmid)!;
      assert.ok(vm.template, 'a template');
      assert.equal(vm.pool, 'pveflow');
      assert.ok(String(vm.config.description).startsWith(imageMarker('debian-12-imported')));
      assert.equal(vm.config.agent, 'enabled=1');
      assert.equal(vm.config.serial0, 'socket');
      assert.match(String(vm.config.ide2), /^local-lvm:.*cloudinit/);
      assert.match(String(vm.config.scsi0), /size=3G/, "the disk is the image's virtual size");

      const status = await handle.query(importStatusQuery);
      assert.equal(status.state, 'completed');
      assert.equal(status.bytes, qcow2.length);
      assert.ok(status.log.some((l) => /checksum verified/.test(l.message)));
      assert.deepEqual((await leftovers(world)).files, [], 'the downloaded file is removed once the template has its copy');

      const catalogue = await harness.h.env.client.workflow.getHandle(imageCatalogueWorkflowId(taskQueue)).query(catalogueQuery);
      const entry = catalogue.entries.find((e) => e.name === 'debian-12-imported');
      assert.deepEqual([entry?.template, entry?.origin, entry?.os], [result.templateVmid, 'import', 'Debian 12']);
    });
  });

  test('onto storage local to each node, with no node named: a download and a template on every node the selector allows, each in the catalogue entry, all removed with the image', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const world = await importingWorld({ PVE_NODE_SELECTOR: 'pve1,pve2' });
    const taskQueue = 'image-import-per-node';
    await harness.h.withWorker(world, taskQueue, async () => {
      const { node: _, ...perNode } = input('per-node', '/tiny.qcow2', sha256(qcow2));
      const result = (await harness.h.env.client.workflow.execute('imageImport', { taskQueue, workflowId: 'image-import-per-node', args: [perNode] })) as ImageImportResult;
      assert.deepEqual(
        result.templates.map((t) => t.node),
        ['pve1', 'pve2'],
      );
      for (const made of result.templates) {
        const vm = world.pve.dump().vms.find((v) => v.vmid === made.vmid)!;
        assert.equal(vm.node, made.node);
        assert.ok(vm.template, `${made.vmid} is a template`);
        assert.match(String(vm.config.scsi0), /^local-lvm:/);
        assert.ok(!hasTag(String(vm.config.tags ?? ''), IMAGE_IMPORT_TAG), 'the import tag is off the template (a clone would inherit it)');
      }
      assert.notEqual(result.templates[0]!.vmid, result.templates[1]!.vmid);
      assert.deepEqual((await leftovers(world, ['pve1', 'pve2'])).files, [], "each node's downloaded file is removed");
      const catalogue = await harness.h.env.client.workflow.getHandle(imageCatalogueWorkflowId(taskQueue)).query(catalogueQuery);
      const entry = catalogue.entries.find((e) => e.name === 'per-node')!;
      assert.equal(entry.template, result.templates[0]!.vmid);
      assert.deepEqual(
        entry.templates?.map((t) => [t.node, t.vmid]),
        result.templates.map((t) => [t.node, t.vmid]),
      );

      // Deleting the image removes every template (what DELETE /api/images/{name} starts).
      const [first, ...others] = result.templates;
      const removal = { name: 'per-node', node: first!.node, vmid: first!.vmid, others: others.map((o) => ({ node: o.node, vmid: o.vmid })) };
      assert.equal(await harness.h.env.client.workflow.execute('imageTemplateRemoval', { taskQueue, workflowId: 'per-node-removal', args: [removal] }), 'destroyed');
      assert.deepEqual((await leftovers(world, ['pve1', 'pve2'])).vms, [], 'no template of the image is left on any node');
    });
  });

  test('onto a shared disk storage, with no node named: one template for the cluster', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const world = await importingWorld({ PVE_NODE_SELECTOR: 'pve1,pve2' });
    const taskQueue = 'image-import-shared';
    await harness.h.withWorker(world, taskQueue, async () => {
      const { node: _, ...shared } = input('shared', '/tiny.qcow2', sha256(qcow2), { diskStorage: 'ceph' });
      const result = (await harness.h.env.client.workflow.execute('imageImport', { taskQueue, workflowId: 'image-import-shared', args: [shared] })) as ImageImportResult;
      assert.equal(result.templates.length, 1);
      assert.match(String(world.pve.dump().vms.find((v) => v.vmid === result.templateVmid)?.config.scsi0), /^ceph:/);
    });
  });

  test("a failure after the first node's template removes every template and file made", async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const world = await importingWorld({ PVE_NODE_SELECTOR: 'pve1,pve2' });
    const taskQueue = 'image-import-per-node-fails';
    await harness.h.withWorker(world, taskQueue, async () => {
      // The catalogue refuses the name at the last stage: both templates and files are made by then.
      await harness.h.env.client.workflow.execute('imageImport', { taskQueue, workflowId: 'image-import-taken-first', args: [input('taken', '/tiny.qcow2', sha256(qcow2))] });
      const { node: _, ...again } = input('taken', '/tiny.qcow2', sha256(qcow2));
      const handle = await harness.h.env.client.workflow.start('imageImport', { taskQueue, workflowId: 'image-import-taken-again', args: [again] });
      const err = await handle.result().then(
        () => assert.fail('the import succeeded'),
        (e: unknown) => e as WorkflowFailedError,
      );
      assert.match(String(err.cause?.message), /failed at stage cataloguing: .*exists already/);
      const status = await handle.query(importStatusQuery);
      assert.equal(status.templates?.length, 2, 'both templates were made before the failure');
      assert.deepEqual(status.leftovers, []);
      const left = await leftovers(world, ['pve1', 'pve2']);
      assert.deepEqual(left, { files: [], vms: [(await harness.h.env.client.workflow.getHandle('image-import-taken-first').query(importStatusQuery)).templateVmid] }, "only the first import's template is left");
    });
  });

  test("a deleted image's template is removed when pveflow imported it; a template without its marker is kept", async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const world = await importingWorld();
    const taskQueue = 'image-template-removal';
    await harness.h.withWorker(world, taskQueue, async () => {
      const { client } = harness.h.env;
      const imported = (await client.workflow.execute('imageImport', { taskQueue, workflowId: 'image-import-removal', args: [input('to-delete', '/tiny.qcow2', sha256(qcow2))] })) as {
        templateVmid: number;
        node: string;
      };
      assert.deepEqual((await leftovers(world)).vms, [imported.templateVmid]);

      const removal = { name: 'to-delete', node: imported.node, vmid: imported.templateVmid };
      assert.equal(await client.workflow.execute('imageTemplateRemoval', { taskQueue, workflowId: 'removal-1', args: [removal] }), 'destroyed');
      assert.deepEqual(await leftovers(world), { files: [], vms: [] }, 'the template and its disks are gone');
      // Run again (an API retry, a second DELETE's workflow): nothing there is success.
      assert.equal(await client.workflow.execute('imageTemplateRemoval', { taskQueue, workflowId: 'removal-2', args: [removal] }), 'absent');

      // The world's own template, made by hand (no image marker): pveflow refuses to destroy it, and it stays.
      const err = await client.workflow.execute('imageTemplateRemoval', { taskQueue, workflowId: 'removal-3', args: [{ name: 'to-delete', node: 'pve1', vmid: 9000 }] }).then(
        () => assert.fail('a template without the marker was destroyed'),
        (e: unknown) => e as WorkflowFailedError,
      );
      assert.match(`${err.cause?.message} ${(err.cause?.cause as Error | undefined)?.message}`, /VM 9000 on pve1 does not carry image to-delete's marker: pveflow will not destroy it/);
      assert.ok(
        world.pve.dump().vms.some((v) => v.vmid === 9000 && v.template),
        'the hand-made template is kept',
      );
    });
  });

  test('a checksum that does not match fails the import saying so, and leaves nothing', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const world = await importingWorld();
    const taskQueue = 'image-import-mismatch';
    await harness.h.withWorker(world, taskQueue, async () => {
      const handle = await harness.h.env.client.workflow.start('imageImport', { taskQueue, workflowId: 'image-import-mismatch', args: [input('mismatch', '/tiny.qcow2', 'b'.repeat(64))] });
      const err = await handle.result().then(
        () => assert.fail('the import succeeded'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof WorkflowFailedError);
      assert.match(String(err.cause?.message), /import of image mismatch failed at stage downloading: .*does not match the expected sha256 checksum/);
      assert.deepEqual(await leftovers(world), { files: [], vms: [] });
    });
  });

  test('an empty file, or one that is not a disk image, fails the import naming why, and leaves nothing', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const world = await importingWorld();
    const taskQueue = 'image-import-bad-file';
    await harness.h.withWorker(world, taskQueue, async () => {
      for (const [name, path, body] of [
        ['empty', '/empty.qcow2', Buffer.alloc(0)],
        ['page', '/page.qcow2', Buffer.from('<html><body>not an image</body></html>'.repeat(64))],
      ] as const) {
        const handle = await harness.h.env.client.workflow.start('imageImport', { taskQueue, workflowId: `image-import-${name}`, args: [input(name, path, sha256(body))] });
        const err = await handle.result().then(
          () => assert.fail(`${name} was imported`),
          (e: unknown) => e as WorkflowFailedError,
        );
        assert.match(String(err.cause?.message), new RegExp(`import of image ${name} failed at stage downloading: image ${name}: what .* serves is not a qcow2 disk image .*Give the URL of the image file itself`), name);
        assert.deepEqual((await handle.query(importStatusQuery)).leftovers, [], name);
      }
      assert.deepEqual(await leftovers(world), { files: [], vms: [] });
    });
  });

  test('a cancel mid-download stops the download and leaves nothing on the storage', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const world = await importingWorld();
    const taskQueue = 'image-import-cancel';
    await harness.h.withWorker(world, taskQueue, async () => {
      const handle = await harness.h.env.client.workflow.start('imageImport', { taskQueue, workflowId: 'image-import-cancel', args: [input('slow', '/slow.qcow2', 'c'.repeat(64))] });
      await waitFor('the download to start', async () => ((await handle.query(importStatusQuery)).stage === 'downloading' && held.length > 0 ? true : undefined));
      await handle.cancel();
      await assert.rejects(handle.result(), /cancel/i);
      const status = await handle.query(importStatusQuery);
      assert.equal(status.state, 'cancelled');
      assert.deepEqual(status.leftovers, []);
      assert.deepEqual(await leftovers(world), { files: [], vms: [] });
    });
  });
});
