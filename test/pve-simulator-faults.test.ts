import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { PveTiming } from '../src/simulators/pve';
import { startPveHarness, type PveHarness } from '../src/simulators/pve/harness';

/**
 * Fault injection by class (issue 4 §7): each fault reproduces one real failure with PVE's placement (HTTP error
 * or failed task) and texts, hits only what it targets, stops after `times`, and can be switched in-process and
 * through the control endpoint.
 */
const FAST: Partial<PveTiming> = {
  linkedCloneMs: 30,
  fullCloneMsPerGiB: 5,
  configMs: 5,
  startMs: 10,
  stopMs: 10,
  shutdownMs: 10,
  destroyMs: 10,
  createMs: 10,
  agentStartMs: 60,
  ipv4AfterAgentMs: 20,
  resourcesLagMs: 40,
  authFailureDelayMs: 10,
  flockTimeoutMs: 120,
  proxyTimeoutMs: 150,
  rrdExpiryMs: 300,
};
const CONTROL = 'control-secret-for-tests';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let h: PveHarness;
before(async () => {
  h = await startPveHarness({ timing: FAST, controlToken: CONTROL });
  for (const newid of [100, 101]) {
    const { exitstatus } = await h.task('POST', '/nodes/pve1/qemu/9000/clone', { form: { newid: String(newid), pool: 'pveflow', name: `vm-${newid}` } });
    assert.equal(exitstatus, 'OK');
  }
});
after(() => h.close());

describe('locks', () => {
  test('lockTimeout: a held config flock fails a PUT after the timeout and a start as its task; times counts', async () => {
    h.sim.faults.set({ lockTimeout: { vmid: 100, times: 2 } });
    const t0 = Date.now();
    const put = await h.call('PUT', '/nodes/pve1/qemu/100/config', { form: { cores: '3' } });
    assert.equal(put.status, 500);
    assert.equal(put.statusText, "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout");
    assert.ok(Date.now() - t0 >= FAST.flockTimeoutMs!, 'it waited the flock timeout first');
    const other = await h.call('PUT', '/nodes/pve1/qemu/101/config', { form: { cores: '3' } });
    assert.equal(other.status, 200, 'VM 101 is not targeted');
    const start = await h.task('POST', '/nodes/pve1/qemu/100/status/start');
    assert.equal(start.exitstatus, "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout");
    const third = await h.call('PUT', '/nodes/pve1/qemu/100/config', { form: { cores: '3' } });
    assert.equal(third.status, 200, 'the fault was used up');
  });

  test('storageLockTimeout: local storage fails with the flock text, shared with the cfs-lock text; no VM is left', async () => {
    h.sim.faults.set({ storageLockTimeout: { storage: 'local-lvm', times: 1 } });
    const local = await h.task('POST', '/nodes/pve1/qemu/9000/clone', { as: 'root', form: { newid: '300', full: '1', storage: 'local-lvm' } });
    assert.equal(local.exitstatus, "clone failed: can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout");
    h.sim.faults.set({ storageLockTimeout: { storage: 'ceph', times: 1 } });
    const shared = await h.task('POST', '/nodes/pve1/qemu/9000/clone', { as: 'root', form: { newid: '301', full: '1' } });
    assert.equal(shared.exitstatus, "clone failed: cfs-lock 'storage-ceph' error: got lock request timeout");
    assert.ok(!h.sim.dump().vms.some((v) => v.vmid === 300 || v.vmid === 301), 'failed clones leave nothing behind');
  });

  test('workerKilled: a killed clone ends "unexpected status" and leaves a stale lock: clone that blocks everything', async () => {
    h.sim.faults.set({ workerKilled: { taskType: 'qmclone', times: 1 } });
    const clone = await h.task('POST', '/nodes/pve1/qemu/9000/clone', { form: { newid: '310', pool: 'pveflow' } });
    assert.equal(clone.exitstatus, 'unexpected status');
    const log = (await h.call('GET', `/nodes/pve1/tasks/${encodeURIComponent(clone.upid)}/log`)).body!.data as { t: string }[];
    assert.ok(!log.some((l) => l.t.startsWith('TASK ')), 'no final TASK line in the log of a killed worker');
    const vm = h.sim.dump().vms.find((v) => v.vmid === 310);
    assert.equal(vm?.lock, 'clone');
    const put = await h.call('PUT', '/nodes/pve1/qemu/310/config', { as: 'root', form: { cores: '2' } });
    assert.equal(put.statusText, 'VM is locked (clone)');
    const start = await h.task('POST', '/nodes/pve1/qemu/310/status/start', { as: 'root' });
    assert.equal(start.exitstatus, 'VM is locked (clone)');
    const active = (await h.call('GET', '/nodes/pve1/tasks?source=active&vmid=9000', { as: 'root' })).body!.data as unknown[];
    assert.deepEqual(active, [], 'no task holds it: the lock is stale');
  });
});

describe('capacity and cluster', () => {
  test('noSpace: the storage shows avail 0 and a full clone fails with the plugin text', async () => {
    h.sim.faults.set({ noSpace: { storage: 'ceph' } });
    const storages = (await h.call('GET', '/nodes/pve1/storage?content=images')).body!.data as { storage: string; avail: number }[];
    assert.equal(storages.find((s) => s.storage === 'ceph')!.avail, 0);
    assert.ok(storages.find((s) => s.storage === 'local-lvm')!.avail > 0);
    const clone = await h.task('POST', '/nodes/pve1/qemu/9000/clone', { as: 'root', form: { newid: '320', full: '1' } });
    assert.equal(clone.exitstatus, "clone failed: rbd create 'vm-320-disk-0' error: rbd: create error: (28) No space left on device");
    h.sim.faults.clear('noSpace');
    const again = await h.task('POST', '/nodes/pve1/qemu/9000/clone', { as: 'root', form: { newid: '320', full: '1' } });
    assert.equal(again.exitstatus, 'OK');
  });

  test('nodeOffline: offline in /nodes, 595 on proxied calls, its VMs stale then unknown in /cluster/resources', async () => {
    const migrate = await h.task('POST', '/nodes/pve1/qemu/101/migrate', { as: 'root', form: { target: 'pve2' } });
    assert.equal(migrate.exitstatus, 'OK');
    assert.equal((await h.task('POST', '/nodes/pve2/qemu/101/status/start', { as: 'root' })).exitstatus, 'OK');
    await sleep(FAST.resourcesLagMs! + 20);
    h.sim.faults.set({ nodeOffline: { node: 'pve2' } });
    const nodes = (await h.call('GET', '/nodes', { as: 'root' })).body!.data as { node: string; status: string; maxcpu?: number }[];
    const pve2 = nodes.find((n) => n.node === 'pve2')!;
    assert.equal(pve2.status, 'offline');
    assert.equal(pve2.maxcpu, undefined, 'no metrics for an offline node');
    const status = await h.call('GET', '/nodes/pve2/status', { as: 'root' });
    assert.equal(status.status, 595);
    assert.equal(status.statusText, 'No route to host');
    assert.equal(status.raw, '');
    const stale = ((await h.call('GET', '/cluster/resources?type=vm', { as: 'root' })).body!.data as { vmid: number; status: string; node: string }[]).find((v) => v.vmid === 101)!;
    assert.deepEqual([stale.status, stale.node], ['running', 'pve2'], 'the last RRD data stays for a while');
    await sleep(FAST.rrdExpiryMs! + 30);
    const expired = ((await h.call('GET', '/cluster/resources?type=vm', { as: 'root' })).body!.data as { vmid: number; status: string; name?: string }[]).find((v) => v.vmid === 101)!;
    assert.equal(expired.status, 'unknown');
    assert.equal(expired.name, undefined);
    h.sim.faults.clear();
    h.sim.faults.set({ nodeOffline: { node: 'pve3', error: 'timeout' } });
    const t0 = Date.now();
    const slow = await h.call('GET', '/nodes/pve3/status', { as: 'root' });
    assert.equal(slow.status, 596);
    assert.equal(slow.statusText, 'Connection timed out');
    assert.ok(Date.now() - t0 >= FAST.proxyTimeoutMs!);
    h.sim.faults.clear('nodeOffline');
    assert.equal((await h.call('GET', '/nodes/pve2/status', { as: 'root' })).status, 200);
  });

  test("quorumLoss: writes fail with PVE's text, reads still work; a node-scoped loss spares the other nodes", async () => {
    h.sim.faults.set({ quorumLoss: {} });
    const clone = await h.call('POST', '/nodes/pve1/qemu/9000/clone', { form: { newid: '330', pool: 'pveflow' } });
    assert.equal(clone.status, 500);
    assert.equal(clone.statusText, 'cluster not ready - no quorum?');
    assert.equal((await h.call('GET', '/nodes/pve1/qemu/100/config')).status, 200);
    h.sim.faults.clear();
    h.sim.faults.set({ quorumLoss: { node: 'pve3' } });
    assert.equal((await h.call('PUT', '/nodes/pve1/qemu/100/config', { form: { cores: '2' } })).status, 200);
    h.sim.faults.clear();
  });

  test('nextidRace: the id nextid answered is taken by another client; a clone to it fails like PVE', async () => {
    h.sim.faults.set({ nextidRace: { node: 'pve1', times: 1 } });
    const id = (await h.call('GET', '/cluster/nextid')).body!.data as string;
    const clone = await h.call('POST', '/nodes/pve1/qemu/9000/clone', { form: { newid: id, pool: 'pveflow' } });
    assert.equal(clone.status, 500);
    assert.equal(clone.statusText, `unable to create VM ${id}: config file already exists`);
    const probe = await h.call('GET', `/cluster/nextid?vmid=${id}`);
    assert.deepEqual(probe.body!.errors, { vmid: `VM ${id} already exists` });
    const next = (await h.call('GET', '/cluster/nextid')).body!.data as string;
    assert.notEqual(next, id);
    const crossNode = await h.call('POST', '/nodes/pve1/qemu/9000/clone', { form: { newid: next, pool: 'pveflow' } });
    assert.equal(crossNode.status, 200, 'the fault was used up');
  });
});

describe('tasks, agent and transport', () => {
  test("taskFailure targets a vmid: the other VM's task is untouched", async () => {
    h.sim.faults.set({ taskFailure: { type: 'qmconfig', vmid: 101, error: 'hotplug problem - injected' } });
    assert.equal((await h.task('POST', '/nodes/pve1/qemu/100/config', { form: { cores: '2' } })).exitstatus, 'OK');
    assert.equal((await h.task('POST', '/nodes/pve2/qemu/101/config', { as: 'root', form: { cores: '2' } })).exitstatus, 'hotplug problem - injected');
  });

  test('agentNeverStarts: the started VM never gets an agent and never announces its boot', async () => {
    h.sim.faults.set({ agentNeverStarts: { vmid: 100, times: 1 } });
    const before = h.boots.length;
    assert.equal((await h.task('POST', '/nodes/pve1/qemu/100/status/start')).exitstatus, 'OK');
    await sleep(FAST.agentStartMs! + 40);
    const ping = await h.call('POST', '/nodes/pve1/qemu/100/agent/ping');
    assert.equal(ping.statusText, 'QEMU guest agent is not running');
    assert.equal(h.boots.length, before);
    assert.equal((await h.task('POST', '/nodes/pve1/qemu/100/status/stop')).exitstatus, 'OK');
    assert.equal((await h.task('POST', '/nodes/pve1/qemu/100/status/start')).exitstatus, 'OK');
    await sleep(FAST.agentStartMs! + 40);
    assert.equal((await h.call('POST', '/nodes/pve1/qemu/100/agent/ping')).status, 200, 'the next boot has its agent');
  });

  test('slowSync: a synchronous call answers 596 after the proxy timeout while the change still lands', async () => {
    h.sim.faults.set({ slowSync: { route: 'PUT /nodes/{node}/qemu/{vmid}/config', vmid: 100, times: 1 } });
    const put = await h.call('PUT', '/nodes/pve1/qemu/100/config', { form: { description: 'slow write' } });
    assert.equal(put.status, 596);
    assert.equal(put.statusText, 'Connection timed out');
    const cfg = (await h.call('GET', '/nodes/pve1/qemu/100/config')).body!.data as { description?: string };
    assert.equal(cfg.description, 'slow write');
  });

  test('latency delays every request; errorRate fails exactly that share with a 5xx', async () => {
    h.sim.faults.set({ latency: { ms: 80, route: 'GET /version' } });
    const t0 = Date.now();
    assert.equal((await h.call('GET', '/version')).status, 200);
    assert.ok(Date.now() - t0 >= 80);
    h.sim.faults.clear('latency');
    h.sim.faults.set({ errorRate: { rate: 0.5, status: 503, message: 'Service Unavailable', route: 'GET /version' } });
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await h.call('GET', '/version')).status);
    assert.equal(statuses.filter((s) => s === 503).length, 5);
    assert.equal((await h.call('GET', '/cluster/nextid')).status, 200, 'other routes are not hit');
    h.sim.faults.clear();
  });
});

describe('control endpoint', () => {
  test('needs the bearer token; sets, lists and clears faults; dumps state', async () => {
    assert.equal((await h.control('GET', '/_sim/faults', undefined)).status, 401);
    assert.equal((await h.control('GET', '/_sim/faults', 'wrong')).status, 401);
    const bad = await h.control('POST', '/_sim/faults', CONTROL, { nodeOffline: { nod: 'pve2' } });
    assert.equal(bad.status, 400);
    const set = await h.control('POST', '/_sim/faults', CONTROL, { quorumLoss: {} });
    assert.equal(set.status, 200);
    assert.equal((await h.call('POST', '/nodes/pve1/qemu/100/status/start')).statusText, 'cluster not ready - no quorum?');
    assert.deepEqual(
      ((await h.control('GET', '/_sim/faults', CONTROL)).body!.data as { kind: string }[]).map((f) => f.kind),
      ['quorumLoss'],
    );
    assert.equal((await h.control('DELETE', '/_sim/faults?kind=quorumLoss', CONTROL)).status, 200);
    assert.deepEqual(h.sim.faults.list(), []);
    const state = (await h.control('GET', '/_sim/state', CONTROL)).body!.data as { vms: { vmid: number }[] };
    assert.ok(state.vms.some((v) => v.vmid === 100));
    assert.equal((await h.control('POST', '/_sim/state/save', CONTROL)).status, 409, 'no state file in-process');
  });

  test('without a control token there is no control endpoint at all', async () => {
    const plain = await startPveHarness({ timing: FAST });
    try {
      const r = await plain.control('GET', '/_sim/faults', CONTROL);
      assert.equal(r.status, 501);
      assert.equal(r.statusText, 'no such uri');
    } finally {
      await plain.close();
    }
  });
});
