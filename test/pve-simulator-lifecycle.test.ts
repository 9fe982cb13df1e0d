import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { defaultClusterSeed, type PveTiming } from '../src/simulators/pve';
import { HARNESS_ROOT_SECRET, HARNESS_SECRET, startPveHarness, type PveHarness } from '../src/simulators/pve/harness';

/**
 * The VM lifecycle endpoints of reference §4 beyond clone/config/start/stop: create, resize, the pending section,
 * reboot/reset/suspend/resume, migrate, snapshots, HA resources, storage capacity, the task list filters.
 */
const FAST: Partial<PveTiming> = {
  linkedCloneMs: 20,
  fullCloneMsPerGiB: 2,
  configMs: 5,
  startMs: 10,
  stopMs: 10,
  shutdownMs: 10,
  destroyMs: 10,
  createMs: 10,
  resizeMs: 5,
  migrateMs: 20,
  snapshotMs: 10,
  haActionMs: 30,
  agentStartMs: 40,
  ipv4AfterAgentMs: 10,
  resourcesLagMs: 20,
  authFailureDelayMs: 10,
  flockTimeoutMs: 200,
  proxyTimeoutMs: 100,
  rrdExpiryMs: 200,
};
const GiB = 1024 ** 3;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let h: PveHarness;
before(async () => {
  const seed = defaultClusterSeed({ tokenSecret: HARNESS_SECRET, rootTokenSecret: HARNESS_ROOT_SECRET });
  // This file's token lacks Sys.Audit on / (the HA test shows the 403 a pool-only token gets), unlike the default's.
  seed.acls = seed.acls.filter((a) => a.path !== '/');
  seed.storages.push({ id: 'thick', type: 'lvm', content: ['images'], shared: false, total: 50 * GiB, used: 10 * GiB });
  seed.storages.push({ id: 'thin', type: 'lvmthin', content: ['images'], shared: false, total: 50 * GiB, used: 10 * GiB });
  h = await startPveHarness({ timing: FAST, seed });
});
after(() => h.close());

const config = async (node: string, vmid: number, query = '') => (await h.call('GET', `/nodes/${node}/qemu/${vmid}/config${query}`, { as: 'root' })).body!.data as Record<string, unknown>;

describe('create', () => {
  test('create writes the lock: create placeholder before answering, allocates disks in the worker, joins the pool', async () => {
    const r = await h.call('POST', '/nodes/pve1/qemu', {
      form: { vmid: '200', name: 'made', pool: 'pveflow', scsi0: 'ceph:8', ide2: 'ceph:cloudinit', net0: 'virtio,bridge=vmbr0', agent: '1', memory: '1024' },
    });
    assert.equal(r.status, 200, r.raw);
    assert.match(r.body!.data as string, /:qmcreate:200:pveflow@pve!automation:$/);
    assert.equal(h.sim.dump().vms.find((v) => v.vmid === 200)!.lock, 'create', 'placeholder exists when the UPID is returned');
    const dup = await h.call('POST', '/nodes/pve2/qemu', { form: { vmid: '200', pool: 'pveflow' } });
    assert.equal(dup.statusText, "unable to create VM 200 - VM 200 already exists on node 'pve1'");
    assert.equal((await h.waitTask(r.body!.data as string)).exitstatus, 'OK');
    const cfg = await config('pve1', 200);
    assert.equal(cfg.scsi0, 'ceph:vm-200-disk-0,size=8G');
    assert.equal(cfg.ide2, 'ceph:vm-200-cloudinit,media=cdrom');
    assert.match(String(cfg.net0), /^virtio=BC:24:11:[0-9A-F:]{8},bridge=vmbr0$/);
    assert.match(String(cfg.smbios1), /^uuid=/);
    assert.equal(cfg.lock, undefined);
    assert.ok(h.sim.dump().pools[0]!.vms.includes(200));
  });

  test('thick storage refuses what does not fit and the VMID is free again; thin over-commits', async () => {
    const thick = await h.task('POST', '/nodes/pve1/qemu', { as: 'root', form: { vmid: '201', scsi0: 'thick:100' } });
    assert.equal(thick.exitstatus, `unable to create VM 201 - not enough free space (${40 * GiB} < ${100 * GiB})`);
    assert.ok(!h.sim.dump().vms.some((v) => v.vmid === 201), 'a failed create removes its config');
    const thin = await h.task('POST', '/nodes/pve1/qemu', { as: 'root', form: { vmid: '201', scsi0: 'thin:100' } });
    assert.equal(thin.exitstatus, 'OK');
    const full = await h.task('POST', '/nodes/pve1/qemu', { as: 'root', form: { vmid: '202', scsi0: 'thin:1' } });
    assert.match(full.exitstatus, /Cannot create new thin volume, free space in thin pool/);
    const storages = (await h.call('GET', '/nodes/pve1/storage', { as: 'root' })).body!.data as { storage: string; avail: number }[];
    assert.equal(storages.find((s) => s.storage === 'thin')!.avail, 0);
    assert.equal(storages.find((s) => s.storage === 'thick')!.avail, 40 * GiB);
    assert.equal((await h.task('DELETE', '/nodes/pve1/qemu/201', { as: 'root' })).exitstatus, 'OK');
    const freed = (await h.call('GET', '/nodes/pve1/storage', { as: 'root' })).body!.data as { storage: string; avail: number }[];
    assert.equal(freed.find((s) => s.storage === 'thin')!.avail, 40 * GiB, 'destroy gives the space back');
  });

  test('start=1 starts the VM in a separate task whose UPID is not returned; the VM list and index answer', async () => {
    const { upid, exitstatus } = await h.task('POST', '/nodes/pve2/qemu', { as: 'root', form: { vmid: '203', memory: '512', start: '1' } });
    assert.equal(exitstatus, 'OK');
    await sleep(50);
    const tasks = (await h.call('GET', '/nodes/pve2/tasks?vmid=203&source=all', { as: 'root' })).body!.data as { upid: string; type: string }[];
    assert.ok(tasks.some((t) => t.type === 'qmstart' && t.upid !== upid));
    const list = (await h.call('GET', '/nodes/pve2/qemu', { as: 'root' })).body!.data as { vmid: number; status: string }[];
    assert.equal(list.find((v) => v.vmid === 203)!.status, 'running');
    assert.ok(((await h.call('GET', '/nodes/pve2/qemu/203', { as: 'root' })).body!.data as { subdir: string }[]).some((s) => s.subdir === 'pending'));
  });
});

describe('resize and pending', () => {
  test('resize grows only; "+" must arrive as %2B, a raw "+" is a space and fails the pattern', async () => {
    const raw = await h.call('PUT', '/nodes/pve1/qemu/200/resize', { rawForm: 'disk=scsi0&size=+2G' });
    assert.deepEqual(raw.body!.errors, { size: 'value does not match the regex pattern' });
    const grow = await h.task('PUT', '/nodes/pve1/qemu/200/resize', { rawForm: 'disk=scsi0&size=%2B2G' });
    assert.match(grow.upid, /:resize:200:/);
    assert.equal(grow.exitstatus, 'OK');
    assert.equal((await config('pve1', 200)).scsi0, 'ceph:vm-200-disk-0,size=10G');
    assert.equal((await h.task('PUT', '/nodes/pve1/qemu/200/resize', { form: { disk: 'scsi0', size: '4G' } })).exitstatus, 'shrinking disks is not supported');
    assert.equal((await h.task('PUT', '/nodes/pve1/qemu/200/resize', { form: { disk: 'scsi1', size: '4G' } })).exitstatus, "disk 'scsi1' does not exist");
    assert.equal((await h.task('PUT', '/nodes/pve1/qemu/200/resize', { form: { disk: 'ide2', size: '4G' } })).exitstatus, "you can't resize a cdrom");
  });

  test('changes to a running VM wait in [pending] (hot-pluggable ones apply); a stop applies them', async () => {
    assert.equal((await h.task('POST', '/nodes/pve1/qemu/200/status/start')).exitstatus, 'OK');
    const put = await h.call('PUT', '/nodes/pve1/qemu/200/config', { form: { cores: '4', name: 'renamed', net1: 'virtio,bridge=vmbr0', delete: 'agent' } });
    assert.equal(put.status, 200, put.raw);
    const current = await config('pve1', 200, '?current=1');
    assert.equal(current.cores, undefined, 'cores is not hot-pluggable by default');
    assert.equal(current.name, 'renamed');
    assert.ok(current.net1, 'network is hot-pluggable');
    assert.equal(current.agent, '1', 'the deletion is pending');
    assert.equal((await config('pve1', 200)).cores, 4, 'GET merges pending by default');
    const pending = (await h.call('GET', '/nodes/pve1/qemu/200/pending')).body!.data as { key: string; value?: unknown; pending?: unknown; delete?: number }[];
    assert.deepEqual(
      pending.find((p) => p.key === 'cores'),
      { key: 'cores', pending: 4 },
    );
    assert.deepEqual(
      pending.find((p) => p.key === 'agent'),
      { key: 'agent', value: '1', delete: 1 },
    );
    assert.equal((await h.task('POST', '/nodes/pve1/qemu/200/status/stop')).exitstatus, 'OK');
    const applied = await config('pve1', 200, '?current=1');
    assert.equal(applied.cores, 4);
    assert.equal(applied.agent, undefined);
  });

  test('a VM without an agent boots without announcing it (onGuestBoot needs the agent)', async () => {
    const before = h.boots.length;
    assert.equal((await h.task('POST', '/nodes/pve1/qemu/200/status/start')).exitstatus, 'OK');
    await sleep(FAST.agentStartMs! + 30);
    assert.equal(h.boots.length, before);
    assert.equal((await h.call('POST', '/nodes/pve1/qemu/200/agent/ping')).statusText, 'No QEMU guest agent configured');
  });
});

describe('power state rules', () => {
  test('reboot/reset/suspend/resume of a stopped VM are early 500s; of a missing one, "unable to find configuration file"', async () => {
    for (const action of ['reboot', 'reset', 'suspend', 'resume']) {
      const r = await h.call('POST', `/nodes/pve1/qemu/100/status/${action}`, { as: 'root' });
      assert.equal(r.statusText, "unable to find configuration file for VM 100 on node 'pve1'", action);
      const stopped = await h.call('POST', `/nodes/pve2/qemu/203/status/${action}`, { as: 'root' });
      if (action === 'reboot') assert.equal(stopped.status, 200, 'VM 203 runs');
    }
    assert.equal((await h.task('POST', '/nodes/pve2/qemu/203/status/stop', { as: 'root' })).exitstatus, 'OK');
    for (const action of ['reboot', 'reset', 'suspend', 'resume']) {
      const r = await h.call('POST', `/nodes/pve2/qemu/203/status/${action}`, { as: 'root' });
      assert.equal(r.status, 500, action);
      assert.equal(r.statusText, 'VM 203 not running', action);
    }
  });

  test('suspend pauses (qmpstatus paused, shutdown refused), resume continues, reboot applies pending', async () => {
    assert.equal((await h.task('POST', '/nodes/pve2/qemu/203/status/start', { as: 'root' })).exitstatus, 'OK');
    const pause = await h.task('POST', '/nodes/pve2/qemu/203/status/suspend', { as: 'root' });
    assert.match(pause.upid, /:qmpause:203:/);
    const st = (await h.call('GET', '/nodes/pve2/qemu/203/status/current', { as: 'root' })).body!.data as { status: string; qmpstatus: string };
    assert.deepEqual([st.status, st.qmpstatus], ['running', 'paused']);
    assert.equal((await h.call('POST', '/nodes/pve2/qemu/203/status/shutdown', { as: 'root' })).statusText, 'VM is paused - cannot shutdown');
    assert.equal((await h.task('POST', '/nodes/pve2/qemu/203/status/resume', { as: 'root' })).exitstatus, 'OK');
    await h.call('PUT', '/nodes/pve2/qemu/203/config', { as: 'root', form: { memory: '768' } });
    assert.equal((await config('pve2', 203, '?current=1')).memory, '512');
    const reboot = await h.task('POST', '/nodes/pve2/qemu/203/status/reboot', { as: 'root' });
    assert.match(reboot.upid, /:qmreboot:203:/);
    assert.equal(reboot.exitstatus, 'OK');
    assert.equal((await config('pve2', 203, '?current=1')).memory, '768');
    assert.equal(h.sim.dump().vms.find((v) => v.vmid === 203)!.status, 'running');
  });

  test('suspend to disk sets lock: suspended and stops; resume (a start) brings it back and clears the lock', async () => {
    const disk = await h.task('POST', '/nodes/pve2/qemu/203/status/suspend', { as: 'root', form: { todisk: '1' } });
    assert.match(disk.upid, /:qmsuspend:203:/);
    const vm = h.sim.dump().vms.find((v) => v.vmid === 203)!;
    assert.deepEqual([vm.status, vm.lock], ['stopped', 'suspended']);
    assert.equal((await h.task('POST', '/nodes/pve2/qemu/203/status/resume', { as: 'root' })).exitstatus, 'OK');
    const back = h.sim.dump().vms.find((v) => v.vmid === 203)!;
    assert.deepEqual([back.status, back.lock], ['running', undefined]);
  });
});

describe('migrate, snapshots, HA', () => {
  test('migrate: local target 400, running without online refused, local disks refused live, offline moves the VM', async () => {
    assert.deepEqual((await h.call('POST', '/nodes/pve2/qemu/203/migrate', { as: 'root', form: { target: 'pve2' } })).body!.errors, { target: 'target is local node.' });
    assert.equal((await h.call('POST', '/nodes/pve2/qemu/203/migrate', { as: 'root', form: { target: 'pve9' } })).statusText, "no such cluster node 'pve9'");
    assert.equal((await h.call('POST', '/nodes/pve2/qemu/203/migrate', { as: 'root', form: { target: 'pve1' } })).statusText, "can't migrate running VM without --online");
    await h.call('PUT', '/nodes/pve2/qemu/203/config', { as: 'root', form: { scsi1: 'local-lvm:2' } });
    const live = await h.task('POST', '/nodes/pve2/qemu/203/migrate', { as: 'root', form: { target: 'pve1', online: '1' } });
    assert.equal(live.exitstatus, "can't live migrate attached local disks without with-local-disks option");
    const ok = await h.task('POST', '/nodes/pve2/qemu/203/migrate', { as: 'root', form: { target: 'pve1', online: '1', 'with-local-disks': '1' } });
    assert.match(ok.upid, /^UPID:pve2:.*:qmigrate:203:/);
    assert.equal(ok.exitstatus, 'OK');
    assert.equal((await h.call('GET', '/nodes/pve2/qemu/203/config', { as: 'root' })).statusText, "Configuration file 'nodes/pve2/qemu-server/203.conf' does not exist");
    assert.equal((await h.call('GET', '/nodes/pve1/qemu/203/status/current', { as: 'root' })).status, 200);
  });

  test('snapshots: reserved names, duplicates, unsupported storage, the current entry, rollback restores config', async () => {
    assert.equal((await h.call('POST', '/nodes/pve1/qemu/200/snapshot', { form: { snapname: 'current' } })).statusText, "unable to use snapshot name 'current' (reserved name)");
    const snap = await h.task('POST', '/nodes/pve1/qemu/200/snapshot', { form: { snapname: 'before', description: 'pre-change' } });
    assert.match(snap.upid, /:qmsnapshot:200:/);
    assert.equal(snap.exitstatus, 'OK');
    assert.equal((await h.task('POST', '/nodes/pve1/qemu/200/snapshot', { form: { snapname: 'before' } })).exitstatus, "snapshot name 'before' already used");
    const list = (await h.call('GET', '/nodes/pve1/qemu/200/snapshot')).body!.data as { name: string; description: string; parent?: string }[];
    assert.deepEqual(
      list.map((s) => s.name),
      ['before', 'current'],
    );
    assert.equal(list[1]!.description, 'You are here!');
    assert.equal(list[1]!.parent, 'before');
    await h.call('PUT', '/nodes/pve1/qemu/200/config', { form: { description: 'after' } });
    assert.equal((await h.task('POST', '/nodes/pve1/qemu/200/snapshot/before/rollback')).exitstatus, 'OK');
    const cfg = await config('pve1', 200);
    assert.equal(cfg.description, undefined);
    assert.equal(h.sim.dump().vms.find((v) => v.vmid === 200)!.status, 'stopped', 'rollback of a disk-only snapshot leaves the VM stopped');
    assert.equal((await h.task('DELETE', '/nodes/pve1/qemu/200/snapshot/nope')).exitstatus, "snapshot 'nope' does not exist");
    assert.equal((await h.task('DELETE', '/nodes/pve1/qemu/200/snapshot/before')).exitstatus, 'OK');
    await h.call('PUT', '/nodes/pve1/qemu/200/config', { form: { scsi1: 'local:1' }, as: 'root' }).catch(() => undefined);
    const dirVm = await h.task('POST', '/nodes/pve1/qemu', { as: 'root', form: { vmid: '204', scsi0: 'thick:1' } });
    assert.equal(dirVm.exitstatus, 'OK');
    assert.equal((await h.task('POST', '/nodes/pve1/qemu/204/snapshot', { as: 'root', form: { snapname: 's1' } })).exitstatus, 'snapshot feature is not available');
  });

  test('HA: listing needs Sys.Audit on /; power actions become hastart/hastop; destroy needs purge', async () => {
    assert.equal((await h.call('GET', '/cluster/ha/resources')).statusText, 'Permission check failed (/, Sys.Audit)');
    assert.equal((await h.call('POST', '/cluster/ha/resources', { as: 'root', form: { sid: 'vm:200', state: 'stopped' } })).status, 200);
    assert.equal((await h.call('POST', '/cluster/ha/resources', { as: 'root', form: { sid: '200' } })).statusText, "resource ID 'vm:200' already defined");
    const list = (await h.call('GET', '/cluster/ha/resources', { as: 'root' })).body!.data as { sid: string; state: string }[];
    assert.deepEqual(
      list.map((r) => [r.sid, r.state]),
      [['vm:200', 'stopped']],
    );
    const start = await h.task('POST', '/nodes/pve1/qemu/200/status/start');
    assert.match(start.upid, /:hastart:200:/);
    assert.equal(start.exitstatus, 'OK');
    assert.equal(h.sim.dump().vms.find((v) => v.vmid === 200)!.status, 'stopped', 'the hastart task ends before the VM runs');
    await sleep(FAST.haActionMs! + FAST.startMs! + 60);
    assert.equal(h.sim.dump().vms.find((v) => v.vmid === 200)!.status, 'running');
    const res = ((await h.call('GET', '/cluster/resources?type=vm', { as: 'root' })).body!.data as { vmid: number; hastate?: string }[]).find((v) => v.vmid === 200)!;
    assert.equal(res.hastate, 'started');
    const stop = await h.task('POST', '/nodes/pve1/qemu/200/status/stop');
    assert.match(stop.upid, /:hastop:200:/);
    await sleep(FAST.haActionMs! + FAST.shutdownMs! + 60);
    assert.equal(h.sim.dump().vms.find((v) => v.vmid === 200)!.status, 'stopped');
    assert.equal((await h.call('DELETE', '/nodes/pve1/qemu/200')).statusText, 'unable to remove VM 200 - used in HA resources and purge parameter not set.');
    assert.equal((await h.task('DELETE', '/nodes/pve1/qemu/200?purge=1')).exitstatus, 'OK');
    assert.deepEqual((await h.call('GET', '/cluster/ha/resources', { as: 'root' })).body!.data, []);
  });
});

test('the task list filters by errors, user, status class and time', async () => {
  const all = (await h.call('GET', '/nodes/pve1/tasks?source=all&limit=500', { as: 'root' })).body!.data as { status?: string; user: string; starttime: number }[];
  const errors = (await h.call('GET', '/nodes/pve1/tasks?errors=1&limit=500', { as: 'root' })).body!.data as { status: string }[];
  assert.ok(errors.length > 0);
  assert.ok(errors.every((t) => t.status !== 'OK' && !/^WARNINGS/.test(t.status)));
  assert.equal(errors.length, all.filter((t) => t.status !== undefined && t.status !== 'OK' && !/^WARNINGS/.test(t.status) && t.status !== 'unexpected status').length);
  const pool = (await h.call('GET', '/nodes/pve1/tasks?userfilter=pveflow%40pve&limit=500', { as: 'root' })).body!.data as { user: string }[];
  assert.ok(pool.length > 0 && pool.every((t) => t.user === 'pveflow@pve'));
  const ok = (await h.call('GET', '/nodes/pve1/tasks?statusfilter=ok&limit=500', { as: 'root' })).body!.data as { status: string }[];
  assert.ok(ok.length > 0 && ok.every((t) => t.status === 'OK'));
  const future = (await h.call('GET', `/nodes/pve1/tasks?since=${Math.floor(Date.now() / 1000) + 60}`, { as: 'root' })).body!.data as unknown[];
  assert.deepEqual(future, []);
});
