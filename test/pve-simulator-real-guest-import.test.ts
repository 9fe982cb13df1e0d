import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { z } from 'zod';
import { PveApiError, PveClient } from '../src/clients/pve';
import { simulatorTimings } from '../src/embedded/simulatorTimings';
import { realGuestPrerequisites } from '../src/simulators/pve';
import { formatDiskSize } from '../src/simulators/pve/storageFiles';
import { startSimulatedWorld, type SimulatedWorld } from '../src/simulators/world';

/**
 * Real-guest mode and the import path (issue 31 §3): the project's Debian guest image, served over HTTP on loopback,
 * downloaded by `download-url`, made a VM's disk by `import-from`, made a template; a linked clone of that template
 * then boots the imported image (its disk stands on the template's, not on the image the mode boots by default), and
 * its guest agent answers. Under software emulation a boot takes a minute or more: the wait is long but bounded.
 */
const NODE = 'pve1';
const TEMPLATE = 8300;
const CLONE = 8301;
const BOOT_WAIT_MS = 12 * 60_000;

const reasonNotRunnable = realGuestPrerequisites();
let dir = '';
let world: SimulatedWorld | undefined;
let pve: PveClient;
let server: Server | undefined;
let imageUrl = '';
let imageSha256 = '';

before(async () => {
  if (reasonNotRunnable) return;
  dir = mkdtempSync(join(tmpdir(), 'pve-real-import-'));
  const build = spawnSync('bash', ['scripts/build-guest-image.sh'], { encoding: 'utf8', timeout: 20 * 60_000 });
  if (build.status !== 0) throw new Error(`scripts/build-guest-image.sh failed (${build.status}): ${build.stderr.slice(-3000)}`);
  const image = build.stdout.trim().split('\n').at(-1)!;
  const disk = join(image, 'disk.qcow2');
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(disk)) hash.update(chunk as Buffer);
  imageSha256 = hash.digest('hex');
  server = createServer((req, res) => {
    if (req.url !== '/debian.qcow2') return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': statSync(disk).size });
    createReadStream(disk).pipe(res);
  });
  await new Promise<void>((done) => server!.listen(0, '127.0.0.1', done));
  imageUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/debian.qcow2`;
  world = await startSimulatedWorld({ dir: join(dir, 'world'), timing: simulatorTimings.fast, realGuests: { image } });
  const ca = readFileSync(world.env.PVE_CA_FILE, 'utf8');
  // The world's root token: the import is an operator's act here, not a build's.
  pve = new PveClient({ endpoint: world.env.PVE_ENDPOINT, tokenId: world.rootToken.id, tokenSecret: world.rootToken.secret, ca, timeoutMs: 60_000 });
});

after(async () => {
  await pve?.close();
  await world?.stop();
  await new Promise<void>((done) => (server ? server.close(() => done()) : done()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const upid = z.string();

async function task(path: string, params: Record<string, string | number>): Promise<string> {
  const id = await pve.call('POST', path, params, upid);
  const deadline = Date.now() + 5 * 60_000;
  for (;;) {
    const status = await pve.call('GET', `/nodes/${NODE}/tasks/${encodeURIComponent(id)}/status`, {}, z.object({ status: z.string(), exitstatus: z.string().optional() }).loose());
    if (status.status === 'stopped') return status.exitstatus ?? '';
    if (Date.now() > deadline) throw new Error(`task ${id} did not end`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test('a linked clone of a template made from an imported image boots that image', { timeout: 30 * 60_000 }, async (t) => {
  if (reasonNotRunnable) {
    if (process.env.CI) assert.fail(`real guests cannot run on this machine: ${reasonNotRunnable}`);
    t.skip(`real guests cannot run on this machine: ${reasonNotRunnable}`);
    return;
  }
  const w = world!;
  assert.equal(await task(`/nodes/${NODE}/storage/local/download-url`, { content: 'import', url: imageUrl, filename: 'debian-guest.qcow2', checksum: imageSha256, 'checksum-algorithm': 'sha256' }), 'OK');
  const created = await task(`/nodes/${NODE}/qemu`, {
    vmid: TEMPLATE,
    name: 'imported-debian',
    pool: 'pveflow',
    scsihw: 'virtio-scsi-pci',
    scsi0: 'ceph:0,import-from=local:import/debian-guest.qcow2',
    ide2: 'ceph:cloudinit',
    agent: '1',
    serial0: 'socket',
    memory: 1024,
    net0: 'virtio,bridge=vmbr0',
  });
  assert.equal(created, 'OK');
  const virtualSize = (JSON.parse(execFileSync('qemu-img', ['info', '--output=json', '-U', join(w.realGuestsDir!, `vm-${TEMPLATE}`, 'disk.qcow2')]).toString()) as { 'virtual-size': number })['virtual-size'];
  const config = await pve.vmConfig(NODE, TEMPLATE);
  assert.equal(config.raw.scsi0, `ceph:vm-${TEMPLATE}-disk-0,size=${formatDiskSize(virtualSize)}`, 'the disk is as big as the image');
  assert.equal(await task(`/nodes/${NODE}/qemu/${TEMPLATE}/template`, {}), 'OK');

  assert.equal(await task(`/nodes/${NODE}/qemu/${TEMPLATE}/clone`, { newid: CLONE, name: 'from-imported', pool: 'pveflow' }), 'OK');
  assert.equal(await task(`/nodes/${NODE}/qemu/${CLONE}/config`, { ipconfig0: 'ip=dhcp' }), 'OK');
  assert.equal(await task(`/nodes/${NODE}/qemu/${CLONE}/status/start`, {}), 'OK');
  const guest = w.pve.realGuest(CLONE);
  assert.ok(guest, 'the clone runs a real guest');
  const backing = (JSON.parse(execFileSync('qemu-img', ['info', '--output=json', '-U', guest.disk]).toString()) as { 'backing-filename'?: string })['backing-filename'];
  assert.equal(backing, join(w.realGuestsDir!, `vm-${TEMPLATE}`, 'disk.qcow2'), 'the clone stands on the imported template’s disk');

  const started = Date.now();
  for (;;) {
    const answered = await pve.call('POST', `/nodes/${NODE}/qemu/${CLONE}/agent/ping`, {}, z.unknown()).then(
      () => true,
      (err: unknown) => {
        if (err instanceof PveApiError && /guest agent is not running/.test(err.message)) return false;
        throw err;
      },
    );
    if (answered) break;
    if (Date.now() - started > BOOT_WAIT_MS) assert.fail(`the guest agent never answered; serial console:\n${readFileSync(guest.serialLog, 'utf8').slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 2000));
  }
  t.diagnostic(`the imported image's guest agent answered after ${Math.round((Date.now() - started) / 1000)} s (${guest.accel})`);
  assert.equal(await task(`/nodes/${NODE}/qemu/${CLONE}/status/stop`, {}), 'OK');
});
