import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { defaultClusterSeed, type PveTiming } from '../src/simulators/pve';
import { HARNESS_ROOT_SECRET, HARNESS_SECRET, startPveHarness, type PveHarness } from '../src/simulators/pve/harness';

/**
 * The image import path (issue 31 §3) against the simulator over HTTPS with undici: `download-url` really fetches
 * what a server on 127.0.0.1 serves, in a `download` task whose log reads like PVE's (its own lines and wget's),
 * verifies the checksum, fails with PVE's words on a mismatch, an unreachable URL, an HTTP error, a full storage or
 * a file that is not the image its name says; the `import` content lists it and DELETE removes it; `import-from`
 * makes a disk as big as the image's virtual size (qemu-img's own qcow2 header); `template` turns the VM into one
 * that linked clones stand on. Privileges are PVE's: `Datastore.AllocateTemplate` on the storage, and
 * `Sys.AccessNetwork` on the node or `Sys.Audit` + `Sys.Modify` on `/`.
 */
const FAST: Partial<PveTiming> = { createMs: 5, linkedCloneMs: 5, startMs: 5, destroyMs: 5, configMs: 5, flockTimeoutMs: 200 };
const MiB = 1024 * 1024;

/** Users with one token each (privilege-separated), holding exactly the roles given, on the paths given. */
const PEOPLE: Record<string, { role: string[]; grants: Array<[path: string, role: string]> }> = {
  // May allocate templates on `local`, and nothing that reaches the network.
  'templates@pve': { role: ['Datastore.AllocateTemplate', 'Datastore.Audit'], grants: [['/storage/local', 'ImportStore']] },
  // The storage and the node's network: what download-url needs.
  'importer@pve': {
    role: ['Datastore.AllocateTemplate', 'Datastore.Audit', 'Datastore.Allocate'],
    grants: [
      ['/storage/local', 'ImportStore'],
      ['/nodes/pve1', 'ImportNet'],
    ],
  },
  // The network on `/` the old way: Sys.Audit and Sys.Modify.
  'oldstyle@pve': {
    role: ['Datastore.AllocateTemplate'],
    grants: [
      ['/storage/local', 'ImportStore'],
      ['/', 'RootModify'],
    ],
  },
  // Sys.AccessNetwork but no AllocateTemplate on the storage.
  'netonly@pve': {
    role: [],
    grants: [
      ['/nodes/pve1', 'ImportNet'],
      ['/storage/local', 'PVEDatastoreUser'],
    ],
  },
};
const auth = (user: string) => `PVEAPIToken=${user}!tok=secret-of-${user}`;

let h: PveHarness;
let server: Server;
let base: string;
const files = new Map<string, Buffer>();
let qcow2: Buffer;

function serve(): Promise<void> {
  server = createServer((req, res) => {
    const body = files.get(req.url ?? '');
    if (req.url === '/moved.qcow2') {
      res.writeHead(302, { location: '/disk.qcow2' });
      return res.end();
    }
    if (!body) {
      res.writeHead(404, 'Not Found');
      return res.end('no such file');
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
    res.end(body);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function taskLog(upid: string, as: { auth?: string } = {}): Promise<string[]> {
  const node = upid.split(':')[1]!;
  const r = await h.call('GET', `/nodes/${node}/tasks/${encodeURIComponent(upid)}/log?limit=0`, { as: 'root', ...as });
  return (r.body!.data as { t: string }[]).map((l) => l.t);
}

/** A call that answers a UPID, by whoever `opts` says; the task is awaited as root (anyone's task). */
async function runTask(method: string, path: string, opts: { auth?: string; form?: Record<string, string> } = {}): Promise<{ upid: string; exitstatus: string }> {
  const r = await h.call(method, path, opts.auth ? { auth: opts.auth, form: opts.form } : { as: 'root', form: opts.form });
  if (r.status !== 200 || typeof r.body?.data !== 'string') throw new Error(`${method} ${path}: ${r.status} ${r.statusText} ${r.raw}`);
  return { upid: r.body.data, exitstatus: (await h.waitTask(r.body.data, 'root')).exitstatus };
}

async function download(form: Record<string, string>, opts: { auth?: string; node?: string; storage?: string } = {}) {
  return runTask('POST', `/nodes/${opts.node ?? 'pve1'}/storage/${opts.storage ?? 'local'}/download-url`, { form: { content: 'import', ...form }, auth: opts.auth });
}

async function importVolumes(node = 'pve1'): Promise<{ volid: string; size: number; format: string; content: string }[]> {
  const r = await h.call('GET', `/nodes/${node}/storage/local/content?content=import`, { as: 'root' });
  assert.equal(r.status, 200, r.raw);
  return r.body!.data as { volid: string; size: number; format: string; content: string }[];
}

function importDirFiles(node = 'pve1'): string[] {
  try {
    return readdirSync(join(h.dir, 'storage', 'local', node, 'import'));
  } catch {
    return [];
  }
}

before(async () => {
  const seed = defaultClusterSeed({ tokenSecret: HARNESS_SECRET, rootTokenSecret: HARNESS_ROOT_SECRET });
  seed.roles = { ...seed.roles, ImportNet: ['Sys.AccessNetwork'], RootModify: ['Sys.Audit', 'Sys.Modify'] };
  for (const [user, p] of Object.entries(PEOPLE)) {
    seed.roles[`Import-${user.split('@')[0]}`] = p.role;
    seed.users.push({ userid: user });
    seed.tokens.push({ tokenid: `${user}!tok`, secret: `secret-of-${user}`, privsep: true });
    for (const [path, role] of p.grants) {
      const roleName = role === 'ImportStore' ? `Import-${user.split('@')[0]}` : role;
      for (const subject of [user, `${user}!tok`]) seed.acls.push({ path, subject, role: roleName });
    }
  }
  // A small shared file storage (NFS) that takes imports: 8 MiB free.
  seed.storages.push({ id: 'tiny', type: 'nfs', content: ['import', 'iso'], shared: true, total: 64 * MiB, used: 56 * MiB });
  h = await startPveHarness({ seed, timing: FAST });
  await serve();
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // A real qcow2 as qemu-img makes it: 2 GiB virtual, a few hundred KiB on disk.
  const made = join(h.dir, 'made.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', made, '2G']);
  qcow2 = readFileSync(made);
  files.set('/disk.qcow2', qcow2);
  files.set('/disk.raw', Buffer.alloc(3 * MiB + 5, 7));
  files.set('/notes.qcow2', Buffer.from('this is not a disk image\n'));
  files.set('/big.raw', Buffer.alloc(12 * MiB, 1));
  const backed = join(h.dir, 'backed.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', made, '-F', 'qcow2', backed]);
  files.set('/backed.qcow2', readFileSync(backed));
});

after(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await h.close();
});

describe('download-url', () => {
  test('downloads the URL into the import content, verifies its checksum, and logs as PVE and wget do', async () => {
    const { upid, exitstatus } = await download({ url: `${base}/disk.qcow2`, filename: 'debian.qcow2', checksum: sha256(qcow2), 'checksum-algorithm': 'sha256' });
    assert.equal(exitstatus, 'OK');
    assert.match(upid, /:download:debian\.qcow2:root@pam!pveflow-tests:$/);
    const log = await taskLog(upid);
    assert.equal(log[0], `downloading ${base}/disk.qcow2 to /var/lib/vz/import/debian.qcow2`);
    assert.ok(log.includes('HTTP request sent, awaiting response... 200 OK'), log.join('\n'));
    assert.ok(log.includes(`Length: ${qcow2.length} (${Math.round(qcow2.length / 1024)}K) [application/octet-stream]`), log.join('\n'));
    assert.ok(
      log.some((l) => /^\s+0K\s+100%/.test(l)),
      'the dot progress line reaches 100%',
    );
    assert.ok(log.includes('calculating checksum...OK, checksum verified'));
    assert.equal(log.at(-2), `download of '${base}/disk.qcow2' to '/var/lib/vz/import/debian.qcow2' finished`);
    assert.equal(log.at(-1), 'TASK OK');
    const listed = (await importVolumes()).find((v) => v.volid === 'local:import/debian.qcow2');
    assert.deepEqual({ ...listed, ctime: undefined }, { volid: 'local:import/debian.qcow2', content: 'import', format: 'qcow2', size: qcow2.length, ctime: undefined });
    assert.deepEqual(await importVolumes('pve2'), [], 'a local storage holds the file only on the node that downloaded it');
  });

  test('a checksum mismatch fails the task with PVE’s words and leaves no file behind', async () => {
    const avail = h.sim.dump().storages.find((s) => s.storage === 'local' && s.node === 'pve1')!.avail;
    const wrong = 'ab'.repeat(32);
    const { upid, exitstatus } = await download({ url: `${base}/disk.qcow2`, filename: 'bad.qcow2', checksum: wrong, 'checksum-algorithm': 'sha256' });
    assert.equal(exitstatus, `checksum mismatch: got '${sha256(qcow2)}' != expect '${wrong}'`);
    assert.equal((await taskLog(upid)).at(-2), 'calculating checksum...');
    assert.ok(!(await importVolumes()).some((v) => v.volid === 'local:import/bad.qcow2'));
    assert.deepEqual(
      importDirFiles().filter((f) => f.startsWith('bad')),
      [],
      'neither the file nor its .tmp_dwnl is left',
    );
    assert.equal(h.sim.dump().storages.find((s) => s.storage === 'local' && s.node === 'pve1')!.avail, avail, 'the space is given back');
  });

  test('an existing file is not downloaded again when its checksum matches, and is refused without a checksum', async () => {
    const again = await download({ url: `${base}/disk.qcow2`, filename: 'debian.qcow2', checksum: sha256(qcow2), 'checksum-algorithm': 'sha256' });
    assert.equal(again.exitstatus, 'OK');
    assert.ok((await taskLog(again.upid)).includes('calculating checksum of existing file...OK, got correct file already, no need to download'));
    const refused = await download({ url: `${base}/disk.qcow2`, filename: 'debian.qcow2' });
    assert.equal(refused.exitstatus, "refusing to override existing file '/var/lib/vz/import/debian.qcow2'");
  });

  test('an unreachable URL and an HTTP error fail the task as wget makes them fail', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', () => resolve()));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const refused = await download({ url: `http://127.0.0.1:${port}/disk.qcow2`, filename: 'gone.qcow2' });
    assert.equal(refused.exitstatus, `download failed: Connecting to 127.0.0.1:${port}... failed: Connection refused.`);
    const missing = await download({ url: `${base}/nope.qcow2`, filename: 'nope.qcow2' });
    assert.equal(missing.exitstatus, 'download failed: exit code 8');
    assert.ok((await taskLog(missing.upid)).some((l) => /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ERROR 404: Not Found\.$/.test(l)));
    assert.deepEqual(
      importDirFiles().filter((f) => /^(gone|nope)/.test(f)),
      [],
    );
  });

  test('a redirect is followed', async () => {
    const { upid, exitstatus } = await download({ url: `${base}/moved.qcow2`, filename: 'moved.qcow2' });
    assert.equal(exitstatus, 'OK');
    assert.ok((await taskLog(upid)).includes('Location: /disk.qcow2 [following]'));
  });

  test('a storage without the room fails the download with wget’s write error and takes nothing', async () => {
    const before = h.sim.dump().storages.find((s) => s.storage === 'tiny')!.avail;
    const full = await download({ url: `${base}/big.raw`, filename: 'big.raw' }, { storage: 'tiny' });
    assert.match(full.exitstatus, /^download failed: Cannot write to '\/mnt\/pve\/tiny\/import\/big\.raw\.tmp_dwnl\.\d+' \(No space left on device\)\.$/);
    assert.equal(h.sim.dump().storages.find((s) => s.storage === 'tiny')!.avail, before);
    // The noSpace fault fills any storage.
    h.sim.faults.set({ noSpace: { storage: 'local', node: 'pve1' } });
    try {
      const faulted = await download({ url: `${base}/disk.raw`, filename: 'small.raw' });
      assert.match(faulted.exitstatus, /No space left on device/);
    } finally {
      h.sim.faults.clear('noSpace');
    }
    // A shared storage is one for the cluster: what pve1 downloaded, pve2 lists.
    assert.equal((await download({ url: `${base}/disk.raw`, filename: 'shared.raw' }, { storage: 'tiny' })).exitstatus, 'OK');
    const onPve2 = await h.call('GET', '/nodes/pve2/storage/tiny/content?content=import', { as: 'root' });
    assert.deepEqual(
      (onPve2.body!.data as { volid: string }[]).map((v) => v.volid),
      ['tiny:import/shared.raw'],
    );
  });

  test('a file that is not the image its name says is refused after the download, and removed', async () => {
    const notQcow2 = await download({ url: `${base}/notes.qcow2`, filename: 'notes.qcow2' });
    assert.match(notQcow2.exitstatus, /^failed to verify file: qemu-img: Could not open '\/var\/lib\/vz\/import\/notes\.qcow2\.tmp_dwnl\.\d+': Image is not in qcow2 format$/);
    const backed = await download({ url: `${base}/backed.qcow2`, filename: 'backed.qcow2' });
    assert.match(backed.exitstatus, /^failed to verify file: backing file not allowed for untrusted image '\/var\/lib\/vz\/import\/backed\.qcow2\.tmp_dwnl\.\d+'!$/);
    assert.deepEqual(
      importDirFiles().filter((f) => /^(notes|backed)/.test(f)),
      [],
    );
  });

  test('checks before the task: file name, content type, storage type, and decompression only for ISOs', async () => {
    const badName = await h.call('POST', '/nodes/pve1/storage/local/download-url', { as: 'root', form: { content: 'import', url: `${base}/disk.qcow2`, filename: 'disk.img' } });
    assert.equal(badName.status, 400);
    assert.deepEqual(badName.body!.errors, { filename: 'invalid filename or wrong extension' });
    const lvm = await h.call('POST', '/nodes/pve1/storage/local-lvm/download-url', { as: 'root', form: { content: 'import', url: `${base}/disk.qcow2`, filename: 'disk.qcow2' } });
    assert.equal(lvm.statusText, "can't upload to storage type 'lvmthin', not a file based storage!");
    const isoOnly = await h.call('POST', '/nodes/pve1/storage/tiny/download-url', { as: 'root', form: { content: 'vztmpl', url: `${base}/disk.qcow2`, filename: 'ct.tar.gz' } });
    assert.equal(isoOnly.statusText, "storage 'tiny' is not configured for content-type 'vztmpl'");
    const ftp = await h.call('POST', '/nodes/pve1/storage/local/download-url', { as: 'root', form: { content: 'import', url: 'ftp://127.0.0.1/disk.qcow2', filename: 'disk.qcow2' } });
    assert.deepEqual(ftp.body!.errors, { url: 'value does not match the regex pattern' });
    const gz = await download({ url: `${base}/disk.qcow2`, filename: 'gz.qcow2', compression: 'gz' });
    assert.equal(gz.exitstatus, 'decompression not supported for import');
  });

  test('privileges: Datastore.AllocateTemplate on the storage, then Sys.AccessNetwork on the node or Sys.Audit+Sys.Modify on /', async () => {
    const form = { content: 'import', url: `${base}/disk.qcow2`, filename: 'priv.qcow2' };
    const noTemplate = await h.call('POST', '/nodes/pve1/storage/local/download-url', { auth: auth('netonly@pve'), form });
    assert.equal(noTemplate.status, 403);
    assert.equal(noTemplate.statusText, 'Permission check failed (/storage/local, Datastore.AllocateTemplate)');
    const noNetwork = await h.call('POST', '/nodes/pve1/storage/local/download-url', { auth: auth('templates@pve'), form });
    assert.equal(noNetwork.status, 403);
    // The `or` of the two network privileges fails bare, as PVE's does.
    assert.equal(noNetwork.statusText, 'Permission check failed');
    const defaultToken = await h.call('POST', '/nodes/pve1/storage/local/download-url', { form: { ...form, filename: 'default.qcow2' } });
    assert.equal(defaultToken.status, 200, 'the default token holds the pveflow role’s Sys.AccessNetwork on /nodes');
    await h.waitTask(defaultToken.body!.data as string, 'root');
    const otherNode = await h.call('POST', '/nodes/pve2/storage/local/download-url', { auth: auth('importer@pve'), form });
    assert.equal(otherNode.status, 403, 'Sys.AccessNetwork counts on the node it is granted on');
    assert.equal((await download(form, { auth: auth('importer@pve') })).exitstatus, 'OK');
    assert.equal((await download({ ...form, filename: 'priv2.qcow2' }, { auth: auth('oldstyle@pve') })).exitstatus, 'OK');
  });
});

describe('import content', () => {
  test('DELETE removes an import volume in an imgdel task and gives its space back; a second DELETE warns', async () => {
    assert.equal((await download({ url: `${base}/disk.raw`, filename: 'delete-me.raw' })).exitstatus, 'OK');
    const avail = h.sim.dump().storages.find((s) => s.storage === 'local' && s.node === 'pve1')!.avail;
    const noAllocate = await h.call('DELETE', `/nodes/pve1/storage/local/content/${encodeURIComponent('local:import/delete-me.raw')}`, { auth: auth('templates@pve') });
    assert.equal(noAllocate.statusText, 'Permission check failed (/storage/local, Datastore.Allocate)');
    const del = await runTask('DELETE', `/nodes/pve1/storage/local/content/${encodeURIComponent('local:import/delete-me.raw')}`, { auth: auth('importer@pve') });
    assert.equal(del.exitstatus, 'OK');
    assert.match(del.upid, /:imgdel:local:importer@pve!tok:$/);
    assert.ok((await taskLog(del.upid)).includes("Removed volume 'local:import/delete-me.raw'"));
    assert.ok(!(await importVolumes()).some((v) => v.volid === 'local:import/delete-me.raw'));
    assert.equal(h.sim.dump().storages.find((s) => s.storage === 'local' && s.node === 'pve1')!.avail, avail + 3 * MiB + 5);
    const again = await h.task('DELETE', '/nodes/pve1/storage/local/content/import%2Fdelete-me.raw', { as: 'root' });
    assert.equal(again.exitstatus, 'WARNINGS: 1');
  });
});

describe('import-from and template', () => {
  test('a disk imported from a qcow2 is as big as its virtual size; from a raw file, its length rounded up to KiB', async () => {
    assert.equal((await download({ url: `${base}/disk.raw`, filename: 'odd.raw' })).exitstatus, 'OK');
    const created = await h.task('POST', '/nodes/pve1/qemu', {
      as: 'root',
      form: { vmid: '8100', name: 'imported', scsi0: 'local-lvm:0,import-from=local:import/debian.qcow2', scsi1: 'ceph:0,import-from=local:import/odd.raw', ide2: 'local-lvm:cloudinit', agent: '1' },
    });
    assert.equal(created.exitstatus, 'OK');
    const config = (await h.call('GET', '/nodes/pve1/qemu/8100/config', { as: 'root' })).body!.data as Record<string, string>;
    assert.equal(config.scsi0, 'local-lvm:vm-8100-disk-0,size=2G');
    assert.equal(config.scsi1, `ceph:vm-8100-disk-1,size=${Math.ceil((3 * MiB + 5) / 1024)}K`);
    const log = await taskLog(created.upid);
    assert.ok(log.includes('transferred 2.0 GiB of 2.0 GiB (100.00%)'), log.join('\n'));
    assert.ok(log.includes("scsi0: successfully created disk 'local-lvm:vm-8100-disk-0,size=2G'"));
  });

  test('import-from needs size 0, an import or images volume, and read access to its storage; a missing file fails the task', async () => {
    const sized = await h.call('POST', '/nodes/pve1/qemu', { as: 'root', form: { vmid: '8101', scsi0: 'local-lvm:4,import-from=local:import/debian.qcow2' } });
    assert.equal(sized.status, 400);
    assert.deepEqual(sized.body!.errors, { scsi0: "'import-from' requires special syntax - use <storage ID>:0,import-from=<source>" });
    const iso = await h.call('POST', '/nodes/pve1/qemu', { as: 'root', form: { vmid: '8101', scsi0: 'local-lvm:0,import-from=local:iso/x.iso' } });
    assert.deepEqual(iso.body!.errors, { scsi0: "local:iso/x.iso has wrong type 'iso' - needs to be 'images' or 'import'" });
    const onPve2 = await h.task('POST', '/nodes/pve2/qemu', { as: 'root', form: { vmid: '8101', scsi0: 'local-lvm:0,import-from=local:import/debian.qcow2' } });
    assert.equal(onPve2.exitstatus, "unable to create VM 8101 - failed to stat '/var/lib/vz/import/debian.qcow2'");
    assert.equal(
      h.sim.dump().vms.find((v) => v.vmid === 8101),
      undefined,
      'the failed create leaves no VM',
    );
  });

  test('template turns the disks into base volumes that linked clones stand on; a running VM or a template is refused', async () => {
    const t = await h.task('POST', '/nodes/pve1/qemu/8100/template', { as: 'root' });
    assert.equal(t.exitstatus, 'OK');
    assert.match(t.upid, /:qmtemplate:8100:/);
    const config = (await h.call('GET', '/nodes/pve1/qemu/8100/config', { as: 'root' })).body!.data as Record<string, string | number>;
    assert.equal(config.template, 1);
    assert.equal(config.scsi0, 'local-lvm:base-8100-disk-0,size=2G');
    assert.equal(config.ide2, 'local-lvm:vm-8100-cloudinit,media=cdrom', 'the cloud-init drive stays as it is');
    const twice = await h.call('POST', '/nodes/pve1/qemu/8100/template', { as: 'root' });
    assert.equal(twice.statusText, "you can't convert a template to a template");
    const clone = await h.task('POST', '/nodes/pve1/qemu/8100/clone', { as: 'root', form: { newid: '8102', name: 'from-import' } });
    assert.equal(clone.exitstatus, 'OK');
    const cloned = (await h.call('GET', '/nodes/pve1/qemu/8102/config', { as: 'root' })).body!.data as Record<string, string>;
    assert.equal(cloned.scsi0, 'local-lvm:base-8100-disk-0/vm-8102-disk-0,size=2G');
    assert.equal((await h.task('POST', '/nodes/pve1/qemu/8102/status/start', { as: 'root' })).exitstatus, 'OK');
    const running = await h.call('POST', '/nodes/pve1/qemu/8102/template', { as: 'root' });
    assert.equal(running.statusText, "you can't convert a VM to template if VM is running");
    const denied = await h.call('POST', '/nodes/pve1/qemu/8102/template', { auth: auth('importer@pve') });
    assert.equal(denied.statusText, 'Permission check failed (/vms/8102, VM.Allocate)');
  });
});

describe('stopping a download', () => {
  test('DELETE of the running download task ends it with "received interrupt" and removes its temporary file', async () => {
    files.set('/slow.raw', Buffer.alloc(24 * MiB, 5));
    const avail = h.sim.dump().storages.find((s) => s.storage === 'local' && s.node === 'pve1')!.avail;
    h.sim.faults.set({ slowDownload: { bytesPerSecond: 2 * MiB, storage: 'local' } });
    try {
      const r = await h.call('POST', '/nodes/pve1/storage/local/download-url', { auth: auth('importer@pve'), form: { content: 'import', url: `${base}/slow.raw`, filename: 'slow.raw' } });
      const upid = r.body!.data as string;
      while (!importDirFiles().some((f) => f.startsWith('slow.raw.tmp_dwnl.'))) await new Promise((resolve) => setTimeout(resolve, 20));
      const other = await h.call('DELETE', `/nodes/pve1/tasks/${encodeURIComponent(upid)}`, { auth: auth('templates@pve') });
      assert.equal(other.statusText, 'Permission check failed (/nodes/pve1, Sys.Modify)', 'only its owner or Sys.Modify on the node stops it');
      const stopped = await h.call('DELETE', `/nodes/pve1/tasks/${encodeURIComponent(upid)}`, { auth: auth('importer@pve') });
      assert.equal(stopped.status, 200);
      assert.equal((await h.waitTask(upid, 'root')).exitstatus, 'received interrupt');
      assert.deepEqual(
        importDirFiles().filter((f) => f.startsWith('slow')),
        [],
      );
      assert.equal(h.sim.dump().storages.find((s) => s.storage === 'local' && s.node === 'pve1')!.avail, avail);
    } finally {
      h.sim.faults.clear('slowDownload');
    }
  });
});

describe('slowDownload fault', () => {
  test('a download arrives at the rate the fault gives, with a dot line per 32 MiB', async () => {
    files.set('/large.raw', Buffer.alloc(40 * MiB, 3));
    h.sim.faults.set({ slowDownload: { bytesPerSecond: 400 * MiB, storage: 'local' } });
    try {
      const { upid, exitstatus } = await download({ url: `${base}/large.raw`, filename: 'large.raw' });
      assert.equal(exitstatus, 'OK');
      const dots = (await taskLog(upid)).filter((l) => /^\s+\d+K [. ]+\s*\d+%/.test(l));
      assert.equal(dots.length, 2, dots.join('\n'));
      assert.match(dots[0]!, /^ {5}0K \.{8} \.{8} \.{8} \.{8} 80% /);
      assert.match(dots[1]!, /^ 32768K \.{8} {27}100% /);
    } finally {
      h.sim.faults.clear('slowDownload');
    }
  });
});
