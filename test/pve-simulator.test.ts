import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { generate } from 'selfsigned';
import { Agent, fetch, request } from 'undici';
import { createPveSimulator, defaultClusterSeed, ROOT_TOKEN_ID, type GuestBoot, type PveSimulator, type PveTiming } from '../src/simulators/pve';

/**
 * The PVE simulator against the behaviour the reference documents: envelope and error placement, auth, UPIDs
 * and tasks that take time, locks, permissions of a pool-scoped token, the guest agent state machine.
 */
const TOKEN = 'pveflow@pve!automation';
const SECRET = '6a1c0c47-5b6e-4a53-9d7f-1c2b3d4e5f60';
const ROOT_SECRET = 'root-secret-for-tests';
const UPID_RE = /^UPID:[a-zA-Z0-9-]+:[0-9A-F]{8}:[0-9A-F]{8,9}:[0-9A-F]{8}:[^:\s/]+:[^:\s/]*:[^:\s/]+:$/;

const FAST: Partial<PveTiming> = {
  linkedCloneMs: 120,
  fullCloneMsPerGiB: 40,
  configMs: 10,
  startMs: 40,
  stopMs: 20,
  shutdownMs: 30,
  destroyMs: 30,
  agentStartMs: 150,
  ipv4AfterAgentMs: 150,
  resourcesLagMs: 250,
  authFailureDelayMs: 120,
  flockTimeoutMs: 400,
};

interface Reply {
  status: number;
  statusText: string;
  body: { data?: unknown; message?: string; errors?: Record<string, string>; total?: number } | undefined;
  raw: string;
}

interface Harness {
  sim: PveSimulator;
  url: string;
  boots: GuestBoot[];
  snippets: string;
  call(method: string, path: string, opts?: { form?: Record<string, string>; json?: unknown; as?: 'pool' | 'root' | 'none'; auth?: string }): Promise<Reply>;
  waitTask(upid: string, as?: 'pool' | 'root'): Promise<{ exitstatus: string; [k: string]: unknown }>;
  close(): Promise<void>;
}

let tls: { key: string; cert: string };

async function startHarness(timing: Partial<PveTiming> = FAST): Promise<Harness> {
  const snippets = mkdtempSync(join(tmpdir(), 'pve-sim-snippets-'));
  const boots: GuestBoot[] = [];
  const sim = createPveSimulator({
    seed: defaultClusterSeed({ tokenSecret: SECRET, rootTokenSecret: ROOT_SECRET }),
    timing,
    snippetsDir: (node, storage) => join(snippets, node, storage),
    onGuestBoot: (b) => boots.push(b),
  });
  const server = await sim.listen({ tls });
  const agent = new Agent({ connect: { ca: tls.cert } });
  const call: Harness['call'] = async (method, path, opts = {}) => {
    const headers: Record<string, string> = {};
    const as = opts.as ?? 'pool';
    if (opts.auth !== undefined) headers.authorization = opts.auth;
    else if (as === 'pool') headers.authorization = `PVEAPIToken=${TOKEN}=${SECRET}`;
    else if (as === 'root') headers.authorization = `PVEAPIToken=${ROOT_TOKEN_ID}=${ROOT_SECRET}`;
    let body: string | undefined;
    if (opts.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(opts.form).toString();
    } else if (opts.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.json);
    }
    const res = await fetch(server.url + path, { method, headers, body, dispatcher: agent, signal: AbortSignal.timeout(10_000) });
    const raw = await res.text();
    return { status: res.status, statusText: res.statusText, body: raw ? (JSON.parse(raw) as Reply['body']) : undefined, raw };
  };
  const waitTask: Harness['waitTask'] = async (upid, as = 'pool') => {
    const node = upid.split(':')[1]!;
    for (let i = 0; i < 400; i++) {
      const r = await call('GET', `/nodes/${node}/tasks/${encodeURIComponent(upid)}/status`, { as });
      assert.equal(r.status, 200, r.raw);
      const data = r.body!.data as { status: string; exitstatus: string };
      if (data.status === 'stopped') return data as { exitstatus: string };
      await sleep(20);
    }
    throw new Error(`task ${upid} did not finish`);
  };
  return {
    sim,
    url: server.url,
    boots,
    snippets,
    call,
    waitTask,
    close: async () => {
      await server.close();
      await agent.close();
      rmSync(snippets, { recursive: true, force: true });
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function cloneAndWait(h: Harness, newid: number, extra: Record<string, string> = {}, as: 'pool' | 'root' = 'pool') {
  const r = await h.call('POST', '/nodes/pve1/qemu/9000/clone', { form: { newid: String(newid), pool: 'pveflow', name: `vm-${newid}`, ...extra }, as });
  assert.equal(r.status, 200, r.raw);
  const upid = r.body!.data as string;
  return { upid, status: await h.waitTask(upid, as) };
}

before(async () => {
  const pems = await generate([{ name: 'commonName', value: '127.0.0.1' }], {
    keySize: 2048,
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
  } as Parameters<typeof generate>[1]);
  tls = { key: pems.private, cert: pems.cert };
});

describe('transport, auth and envelope', () => {
  let h: Harness;
  before(async () => (h = await startHarness()));
  after(() => h.close());

  test('a missing token is 401 "No ticket" with an empty body, after the auth delay', async () => {
    const t0 = Date.now();
    const r = await h.call('GET', '/version', { as: 'none' });
    assert.equal(r.status, 401);
    assert.equal(r.statusText, 'No ticket');
    assert.equal(r.raw, '');
    assert.ok(Date.now() - t0 >= 100, 'the 401 is delayed');
  });

  test('a wrong secret is 401 "Authentication failed!"; the token id is split at the last "="', async () => {
    const wrong = await h.call('GET', '/version', { auth: `PVEAPIToken=${TOKEN}=nope` });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.statusText, 'Authentication failed!');
    const ok = await h.call('GET', '/version', { auth: `PVEAPIToken ${TOKEN}=${SECRET}` });
    assert.equal(ok.status, 200);
    assert.deepEqual(Object.keys(ok.body!.data as object).sort(), ['release', 'repoid', 'version']);
  });

  test('an unknown route is 501 with the method and path in reason and message', async () => {
    const r = await h.call('GET', '/nodes/pve1/qemu/9000/foo');
    assert.equal(r.status, 501);
    assert.equal(r.statusText, "Method 'GET /nodes/pve1/qemu/9000/foo' not implemented");
    assert.deepEqual(r.body, { data: null, message: "Method 'GET /nodes/pve1/qemu/9000/foo' not implemented\n" });
  });

  test('a body on DELETE is refused with 501', async () => {
    const agent = new Agent({ connect: { ca: tls.cert } });
    const res = await request(`${h.url}/nodes/pve1/qemu/100`, {
      method: 'DELETE',
      dispatcher: agent,
      body: 'purge=1',
      headers: { authorization: `PVEAPIToken=${TOKEN}=${SECRET}`, 'content-type': 'application/x-www-form-urlencoded' },
    });
    assert.equal(res.statusCode, 501);
    assert.equal(await res.body.text(), "Unexpected content for method 'DELETE'");
    await agent.close();
  });

  test('a missing VM is 500 with the reason phrase and the message in the body, keeping its newline', async () => {
    const r = await h.call('GET', '/nodes/pve1/qemu/4242/config', { as: 'root' });
    assert.equal(r.status, 500);
    assert.equal(r.statusText, "Configuration file 'nodes/pve1/qemu-server/4242.conf' does not exist");
    assert.deepEqual(r.body, { data: null, message: "Configuration file 'nodes/pve1/qemu-server/4242.conf' does not exist\n" });
  });

  test('the pool-scoped token gets 403 before any existence check, and 403 on node status', async () => {
    const vm = await h.call('GET', '/nodes/pve1/qemu/4242/config');
    assert.equal(vm.status, 403);
    assert.equal(vm.body!.message, 'Permission check failed (/vms/4242, VM.Audit)\n');
    const node = await h.call('GET', '/nodes/pve1/status');
    assert.equal(node.statusText, 'Permission check failed (/nodes/pve1, Sys.Audit)');
  });

  test('an unknown node fails like a failed hostname lookup', async () => {
    const r = await h.call('GET', '/nodes/pve9/status', { as: 'root' });
    assert.equal(r.status, 500);
    assert.match(r.statusText, /^hostname lookup 'pve9' failed/);
  });

  test('parameter errors are 400 with per-parameter texts; forms accept booleans only as 0/1, JSON also true/false', async () => {
    const r = await h.call('PUT', '/nodes/pve1/qemu/9000/config', {
      as: 'root',
      form: { onboot: 'true', cores: 'abc', net40: 'virtio,bridge=vmbr0', bogus: '1' },
    });
    assert.equal(r.status, 400);
    assert.equal(r.statusText, 'Parameter verification failed.');
    assert.equal(r.body!.message, 'Parameter verification failed.\n');
    assert.deepEqual(r.body!.errors, {
      onboot: "type check ('boolean') failed - got 'true'",
      cores: "type check ('integer') failed - got 'abc'",
      net40: 'property is not defined in schema and the schema does not allow additional properties',
      bogus: 'property is not defined in schema and the schema does not allow additional properties',
    });
    const json = await h.call('PUT', '/nodes/pve1/qemu/9000/config', { as: 'root', json: { onboot: true, description: 'x' } });
    assert.equal(json.status, 200, json.raw);
    const cfg = (await h.call('GET', '/nodes/pve1/qemu/9000/config', { as: 'root' })).body!.data as Record<string, unknown>;
    assert.equal(cfg.onboot, 1, 'boolean keys come back as numbers');
  });
});

describe('nextid, resources, pools', () => {
  let h: Harness;
  before(async () => (h = await startHarness()));
  after(() => h.close());

  test('nextid is the lowest free id as a string, without reservation; a taken id is a 400', async () => {
    assert.equal((await h.call('GET', '/cluster/nextid')).body!.data, '100');
    assert.equal((await h.call('GET', '/cluster/nextid')).body!.data, '100');
    const taken = await h.call('GET', '/cluster/nextid?vmid=9000');
    assert.equal(taken.status, 400);
    assert.deepEqual(taken.body!.errors, { vmid: 'VM 9000 already exists' });
  });

  test('the pool token sees pool VMs, nodes without metrics, and storages it has ACLs on', async () => {
    const r = await h.call('GET', '/cluster/resources');
    const items = r.body!.data as Record<string, unknown>[];
    const vm = items.find((i) => i.id === 'qemu/9000')!;
    assert.equal(vm.template, 1);
    assert.equal(vm.name, 'debian-12-cloudinit');
    assert.equal(vm.pool, undefined, 'PVEVMAdmin lacks Pool.Audit');
    const node = items.find((i) => i.id === 'node/pve1')!;
    assert.equal(node.maxcpu, undefined);
    const rootNode = ((await h.call('GET', '/cluster/resources?type=node', { as: 'root' })).body!.data as Record<string, unknown>[])[0]!;
    assert.equal(typeof rootNode.maxcpu, 'number');
    assert.ok(items.some((i) => i.id === 'storage/pve2/ceph'));
  });

  test('pools list with members; an unknown pool is 500', async () => {
    const r = await h.call('GET', '/pools?poolid=pveflow', { as: 'root' });
    const [pool] = r.body!.data as { poolid: string; members: { vmid: number }[] }[];
    assert.deepEqual(
      pool!.members.map((m) => m.vmid),
      [9000],
    );
    const missing = await h.call('GET', '/pools?poolid=nope', { as: 'root' });
    assert.equal(missing.statusText, "pool 'nope' does not exist");
  });
});

describe('clone', () => {
  let h: Harness;
  before(async () => (h = await startHarness()));
  after(() => h.close());

  test('a linked clone is a qmclone task on the source id, locked while it runs, and lands in the pool at its end', async () => {
    const r = await h.call('POST', '/nodes/pve1/qemu/9000/clone', { form: { newid: '100', pool: 'pveflow', name: 'web-1' } });
    assert.equal(r.status, 200);
    const upid = r.body!.data as string;
    assert.match(upid, UPID_RE);
    assert.deepEqual(upid.split(':').slice(5, 8), ['qmclone', '9000', TOKEN]);

    const during = await h.call('GET', '/nodes/pve1/qemu/100/config', { as: 'root' });
    assert.equal((during.body!.data as Record<string, unknown>).lock, 'clone');
    assert.equal(h.sim.dump().vms.find((v) => v.vmid === 100)!.pool, undefined, 'not in the pool before the task ends');
    const put = await h.call('PUT', '/nodes/pve1/qemu/100/config', { form: { cores: '4' }, as: 'root' });
    assert.equal(put.status, 500);
    assert.equal(put.statusText, 'VM is locked (clone)');
    const running = await h.call('GET', `/nodes/pve1/tasks/${encodeURIComponent(upid)}/status`);
    assert.equal((running.body!.data as Record<string, unknown>).status, 'running');

    const status = await h.waitTask(upid);
    assert.equal(status.exitstatus, 'OK');
    assert.equal(status.user, 'pveflow@pve');
    assert.equal(status.tokenid, 'automation');
    assert.equal(status.id, '9000');
    const cfg = (await h.call('GET', '/nodes/pve1/qemu/100/config')).body!.data as Record<string, unknown>;
    assert.equal(cfg.lock, undefined);
    assert.equal(cfg.name, 'web-1');
    assert.equal(cfg.scsi0, 'ceph:base-9000-disk-0/vm-100-disk-0,size=4G');
    assert.equal(cfg.ide2, 'ceph:vm-100-cloudinit,media=cdrom');
    assert.equal(cfg.cores, 2);
    assert.equal(cfg.memory, '2048');
    assert.notEqual(cfg.net0, 'virtio=BC:24:11:90:00:01,bridge=vmbr0');
    assert.match(String(cfg.net0), /^virtio=BC:24:11:[0-9A-F:]{8},bridge=vmbr0$/);
    assert.equal(cfg.template, undefined);
    assert.match(String(cfg.digest), /^[0-9a-f]{40}$/);
    assert.equal(h.sim.dump().pools[0]!.vms.includes(100), true);

    const log = await h.call('GET', `/nodes/pve1/tasks/${encodeURIComponent(upid)}/log`);
    const lines = log.body!.data as { n: number; t: string }[];
    assert.equal(lines[0]!.n, 1);
    assert.equal(lines[0]!.t, 'create linked clone of drive scsi0 (ceph:base-9000-disk-0)');
    assert.equal(lines.at(-1)!.t, 'TASK OK');
    assert.equal(log.body!.total, lines.length);
    const wrongNode = await h.call('GET', `/nodes/pve2/tasks/${encodeURIComponent(upid)}/status`);
    assert.equal(wrongNode.status, 400);
    assert.deepEqual(wrongNode.body!.errors, { upid: 'no such task' });
  });

  test('a fresh clone shows in /cluster/resources as unknown without a name until pvestatd has seen it', async () => {
    await cloneAndWait(h, 101);
    const fresh = ((await h.call('GET', '/cluster/resources?type=vm')).body!.data as Record<string, unknown>[]).find((i) => i.vmid === 101)!;
    assert.equal(fresh.status, 'unknown');
    assert.equal(fresh.name, undefined);
    await sleep(FAST.resourcesLagMs! + 20);
    const seen = ((await h.call('GET', '/cluster/resources?type=vm')).body!.data as Record<string, unknown>[]).find((i) => i.vmid === 101)!;
    assert.equal(seen.status, 'stopped');
    assert.equal(seen.name, 'vm-101');
  });

  test('early clone checks answer with PVE texts', async () => {
    const cases: [Record<string, string>, string, number, string][] = [
      [{ newid: '150' }, 'pve2', 500, "unable to find configuration file for VM 9000 on node 'pve2'"],
      [{ newid: '150', target: 'pve7' }, 'pve1', 500, "no such cluster node 'pve7'"],
      [{ newid: '150', full: '1', storage: 'local-lvm', target: 'pve2' }, 'pve1', 500, "can't clone to non-shared storage 'local-lvm'"],
      [{ newid: '150', storage: 'ceph' }, 'pve1', 500, "parameter 'storage' not allowed for linked clones"],
      [{ newid: '150', full: '1', storage: 'local' }, 'pve1', 400, 'Parameter verification failed.'],
      [{ newid: '9000' }, 'pve1', 500, 'unable to create VM 9000: config file already exists'],
    ];
    for (const [form, node, status, reason] of cases) {
      const r = await h.call('POST', `/nodes/${node}/qemu/9000/clone`, { form: { pool: 'pveflow', ...form } });
      assert.equal(r.status, status, JSON.stringify(form));
      assert.equal(r.statusText, reason);
    }
    const bad = await h.call('POST', '/nodes/pve1/qemu/9000/clone', { form: { newid: '150', full: '1', storage: 'local', pool: 'pveflow' } });
    assert.deepEqual(bad.body!.errors, { storage: "storage 'local' does not support vm images" });
  });

  test('the pool token needs pool= to clone; a VM cloned without pool is invisible to it afterwards', async () => {
    const noPool = await h.call('POST', '/nodes/pve1/qemu/9000/clone', { form: { newid: '160' } });
    assert.equal(noPool.status, 403);
    assert.equal(noPool.statusText, 'Permission check failed');
    const missingPool = await h.call('POST', '/nodes/pve1/qemu/9000/clone', { form: { newid: '160', pool: 'ghost' } });
    assert.equal(missingPool.statusText, "Permission check failed (pool 'ghost' does not exist)");

    const r = await h.call('POST', '/nodes/pve1/qemu/9000/clone', { form: { newid: '161' }, as: 'root' });
    await h.waitTask(r.body!.data as string, 'root');
    assert.equal((await h.call('GET', '/nodes/pve1/qemu/161/config')).status, 403);
    const visible = (await h.call('GET', '/cluster/resources?type=vm')).body!.data as { vmid: number }[];
    assert.ok(!visible.some((v) => v.vmid === 161));
    const name = ((await h.call('GET', '/nodes/pve1/qemu/161/config', { as: 'root' })).body!.data as { name: string }).name;
    assert.equal(name, 'Copy-of-VM-debian-12-cloudinit');
  });

  test('a full clone to another node takes time per GiB and ends on the target', async () => {
    const t0 = Date.now();
    const { upid, status } = await cloneAndWait(h, 170, { full: '1', storage: 'ceph', target: 'pve2' });
    assert.equal(status.exitstatus, 'OK');
    assert.ok(Date.now() - t0 >= 4 * FAST.fullCloneMsPerGiB!, 'four GiB at the per-GiB rate');
    assert.ok(upid.startsWith('UPID:pve1:'), 'the task runs on the source node');
    const cfg = (await h.call('GET', '/nodes/pve2/qemu/170/config')).body!.data as Record<string, unknown>;
    assert.equal(cfg.scsi0, 'ceph:vm-170-disk-0,size=4G');
    assert.equal((await h.call('GET', '/nodes/pve1/qemu/170/config')).status, 500);
  });

  test('an injected clone failure ends the task with that error and leaves no VM behind', async () => {
    h.sim.faults.set({ taskFailure: { type: 'qmclone', error: "clone failed: cfs-lock 'storage-ceph' error: got lock request timeout" } });
    const { status } = await cloneAndWait(h, 180);
    assert.equal(status.exitstatus, "clone failed: cfs-lock 'storage-ceph' error: got lock request timeout");
    assert.equal(
      h.sim.dump().vms.some((v) => v.vmid === 180),
      false,
    );
  });
});

describe('config', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
    await cloneAndWait(h, 100);
  });
  after(() => h.close());

  test('PUT is synchronous null; tags are normalized, sshkeys stay encoded, cipassword is masked, "+" is a space', async () => {
    const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB3kQ+ops me@host\n';
    const r = await h.call('PUT', '/nodes/pve1/qemu/100/config', {
      form: { tags: 'Web,db;web', sshkeys: encodeURIComponent(key), cipassword: 'hunter2', ciuser: 'debian', ipconfig0: 'ip=dhcp' },
    });
    assert.equal(r.status, 200, r.raw);
    assert.deepEqual(r.body, { data: null });
    const plus = await h.call('PUT', '/nodes/pve1/qemu/100/config', { form: {} });
    assert.equal(plus.statusText, 'no options specified');
    const cfg = (await h.call('GET', '/nodes/pve1/qemu/100/config')).body!.data as Record<string, unknown>;
    assert.equal(cfg.tags, 'db;web');
    assert.equal(cfg.sshkeys, encodeURIComponent(key));
    assert.equal(cfg.cipassword, '**********');
    // Stored as PVE stores it: a SHA-512 crypt hash of what was sent, never the password itself.
    const stored = String(h.sim.dump().vms.find((v) => v.vmid === 100)!.config.cipassword);
    assert.match(stored, /^\$6\$[^$]+\$[./0-9A-Za-z]{86}$/);
    const { verify } = await import('unixcrypt');
    assert.ok(verify('hunter2', stored));
    // An existing crypt hash is kept as it is.
    await h.call('PUT', '/nodes/pve1/qemu/100/config', { form: { cipassword: stored } });
    assert.equal(String(h.sim.dump().vms.find((v) => v.vmid === 100)!.config.cipassword), stored);
  });

  test('the form decoder turns "+" into a space, and an unencoded ssh key is an invalid urlencoded string', async () => {
    const formBody = 'description=hello+world';
    const agent = new Agent({ connect: { ca: tls.cert } });
    const res = await fetch(`${h.url}/nodes/pve1/qemu/100/config`, {
      method: 'PUT',
      body: formBody,
      dispatcher: agent,
      headers: { authorization: `PVEAPIToken=${TOKEN}=${SECRET}`, 'content-type': 'application/x-www-form-urlencoded' },
    });
    assert.equal(res.status, 200);
    await agent.close();
    const cfg = (await h.call('GET', '/nodes/pve1/qemu/100/config')).body!.data as Record<string, unknown>;
    assert.equal(cfg.description, 'hello world');
    const bad = await h.call('PUT', '/nodes/pve1/qemu/100/config', { form: { sshkeys: 'ssh-rsa AAAA me@x' } });
    assert.deepEqual(bad.body!.errors, { sshkeys: 'invalid format - invalid urlencoded string: ssh-rsa AAAA me@x\n' });
  });

  test('a stale digest is refused; delete removes keys; POST is a qmconfig task applied when it ends', async () => {
    const stale = await h.call('PUT', '/nodes/pve1/qemu/100/config', { form: { cores: '3', digest: '0'.repeat(40) } });
    assert.equal(stale.statusText, 'detected modified configuration - file changed by other user? Try again.');
    const both = await h.call('PUT', '/nodes/pve1/qemu/100/config', { form: { cores: '3', delete: 'cores' } });
    assert.deepEqual(both.body!.errors, { delete: "you can't use '-cores' and -delete cores' at the same time" });
    const post = await h.call('POST', '/nodes/pve1/qemu/100/config', { form: { cores: '4', delete: 'tags' } });
    const upid = post.body!.data as string;
    assert.match(upid, /:qmconfig:100:/);
    assert.equal(((await h.waitTask(upid)) as { exitstatus: string }).exitstatus, 'OK');
    const cfg = (await h.call('GET', '/nodes/pve1/qemu/100/config')).body!.data as Record<string, unknown>;
    assert.equal(cfg.cores, 4);
    assert.equal(cfg.tags, undefined);
  });

  test('property strings are checked per sub-key', async () => {
    const r = await h.call('PUT', '/nodes/pve1/qemu/100/config', { form: { net1: 'virtio,bridge=vm br0', smbios1: 'serial=ds=nocloud' } });
    assert.equal(r.body!.errors!.net1, "invalid format - format error\nnet1.bridge: invalid format - invalid bridge ID 'vm br0'\n\n");
    assert.equal(r.body!.errors!.smbios1, 'invalid format - format error\nsmbios1.serial: value does not match the regex pattern\n');
  });
});

describe('power, guest agent, destroy', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
    await cloneAndWait(h, 100);
  });
  after(() => h.close());

  test('start reads the user-data snippet; the agent comes up, then IPv4; onGuestBoot gets the user-data', async () => {
    const dir = join(h.snippets, 'pve1', 'local');
    (await import('node:fs')).mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'vm-100-user.yaml'), '#cloud-config\nhostname: web\n');
    const set = await h.call('PUT', '/nodes/pve1/qemu/100/config', { form: { cicustom: 'user=local:snippets/vm-100-user.yaml' } });
    assert.equal(set.status, 200, set.raw);

    const notRunning = await h.call('POST', '/nodes/pve1/qemu/100/agent/ping');
    assert.equal(notRunning.statusText, 'VM 100 is not running');
    const start = await h.call('POST', '/nodes/pve1/qemu/100/status/start');
    const upid = start.body!.data as string;
    assert.equal(h.sim.dump().vms.find((v) => v.vmid === 100)!.status, 'stopped', 'not running before the task ends');
    assert.equal((await h.waitTask(upid)).exitstatus, 'OK');
    assert.equal(h.sim.dump().vms.find((v) => v.vmid === 100)!.status, 'running');
    const early = await h.call('GET', '/nodes/pve1/qemu/100/agent/network-get-interfaces');
    assert.equal(early.status, 500);
    assert.deepEqual(early.body, { data: null, message: 'QEMU guest agent is not running\n' });

    await sleep(FAST.agentStartMs! + 30);
    assert.deepEqual(h.boots, [{ node: 'pve1', vmid: 100, name: 'vm-100', userData: '#cloud-config\nhostname: web\n', newInstance: true }]);
    assert.deepEqual((await h.call('POST', '/nodes/pve1/qemu/100/agent/ping')).body, { data: { result: {} } });
    const noLease = (await h.call('GET', '/nodes/pve1/qemu/100/agent/network-get-interfaces')).body!.data as { result: { name: string; 'ip-addresses': { 'ip-address-type': string; 'ip-address': string }[] }[] };
    const eth0 = noLease.result.find((i) => i.name === 'eth0')!;
    assert.deepEqual(
      eth0['ip-addresses'].map((a) => a['ip-address-type']),
      ['ipv6'],
    );
    assert.match(eth0['ip-addresses'][0]!['ip-address'], /^fe80::/);

    await sleep(FAST.ipv4AfterAgentMs! + 30);
    const leased = (await h.call('GET', '/nodes/pve1/qemu/100/agent/network-get-interfaces')).body!.data as typeof noLease;
    const ipv4 = leased.result.find((i) => i.name === 'eth0')!['ip-addresses'].find((a) => a['ip-address-type'] === 'ipv4');
    assert.match(ipv4!['ip-address'], /^10\.20\.\d+\.\d+$/);

    const current = (await h.call('GET', '/nodes/pve1/qemu/100/status/current')).body!.data as Record<string, unknown>;
    assert.equal(current.status, 'running');
    assert.equal(current.agent, 1);
    assert.equal(typeof current.pid, 'number');
  });

  test('a reboot with the same cloud-init drive is the same instance (runcmd does not run again); changed snippet bytes are a new one', async () => {
    const boots = () => h.boots.filter((b) => b.vmid === 100).map((b) => b.newInstance);
    const reboot = await h.call('POST', '/nodes/pve1/qemu/100/status/reboot');
    assert.equal((await h.waitTask(reboot.body!.data as string)).exitstatus, 'OK');
    await sleep(FAST.agentStartMs! + 30);
    assert.deepEqual(boots(), [true, false], 'the guest booted again, as the same instance');

    writeFileSync(join(h.snippets, 'pve1', 'local', 'vm-100-user.yaml'), '#cloud-config\nhostname: web2\n');
    const again = await h.call('POST', '/nodes/pve1/qemu/100/status/reboot');
    assert.equal((await h.waitTask(again.body!.data as string)).exitstatus, 'OK');
    await sleep(FAST.agentStartMs! + 30);
    assert.deepEqual(boots(), [true, false, true], 'new user-data bytes: a new instance id, every per-instance module runs again');
  });

  test('start of a running VM fails in the task; destroy of a running VM fails early; stop of a stopped VM is OK', async () => {
    const again = await h.call('POST', '/nodes/pve1/qemu/100/status/start');
    assert.equal((await h.waitTask(again.body!.data as string)).exitstatus, 'VM 100 already running');
    const destroy = await h.call('DELETE', '/nodes/pve1/qemu/100');
    assert.equal(destroy.statusText, 'VM 100 is running - destroy failed');
    const stop = await h.call('POST', '/nodes/pve1/qemu/100/status/stop');
    assert.equal((await h.waitTask(stop.body!.data as string)).exitstatus, 'OK');
    const stopAgain = await h.call('POST', '/nodes/pve1/qemu/100/status/shutdown');
    assert.equal((await h.waitTask(stopAgain.body!.data as string)).exitstatus, 'OK');
    assert.equal((await h.call('GET', '/nodes/pve1/qemu/100/agent/ping', {})).status, 501, 'ping is POST only');
  });

  test('a missing snippet and a template start fail as tasks; no agent key is its own error', async () => {
    await h.call('PUT', '/nodes/pve1/qemu/100/config', { form: { cicustom: 'user=local:snippets/missing.yaml' } });
    const start = await h.call('POST', '/nodes/pve1/qemu/100/status/start');
    assert.equal((await h.waitTask(start.body!.data as string)).exitstatus, "can't find file 'local:snippets/missing.yaml'");
    const tmpl = await h.call('POST', '/nodes/pve1/qemu/9000/status/start');
    assert.equal((await h.waitTask(tmpl.body!.data as string)).exitstatus, "you can't start a vm if it's a template");
    await h.call('PUT', '/nodes/pve1/qemu/100/config', { form: { delete: 'agent' } });
    assert.equal((await h.call('POST', '/nodes/pve1/qemu/100/agent/ping')).statusText, 'No QEMU guest agent configured');
  });

  test('destroy removes the VM from the vmlist and the pool when its task ends; then the token gets 403', async () => {
    const r = await h.call('DELETE', '/nodes/pve1/qemu/100?purge=1&destroy-unreferenced-disks=1');
    const upid = r.body!.data as string;
    assert.match(upid, /:qmdestroy:100:/);
    assert.ok(
      h.sim.dump().vms.some((v) => v.vmid === 100),
      'still there while the task runs',
    );
    assert.equal((await h.waitTask(upid)).exitstatus, 'OK');
    assert.equal(
      h.sim.dump().vms.some((v) => v.vmid === 100),
      false,
    );
    assert.deepEqual(h.sim.dump().pools[0]!.vms, [9000]);
    assert.equal((await h.call('GET', '/nodes/pve1/qemu/100/config')).status, 403);
  });

  test('the task list filters by vmid and source, and call counts are per route template', async () => {
    const list = (await h.call('GET', '/nodes/pve1/tasks?vmid=100&source=all')).body!.data as { type: string; status?: string }[];
    assert.ok(list.some((t) => t.type === 'qmdestroy' && t.status === 'OK'));
    const active = (await h.call('GET', '/nodes/pve1/tasks?source=active')).body!.data as unknown[];
    assert.deepEqual(active, []);
    const counts = h.sim.callCounts();
    assert.ok(counts['GET /nodes/{node}/tasks/{upid}/status']! > 0);
    assert.equal(counts['DELETE /nodes/{node}/qemu/{vmid}'], 2);
  });
});

describe('locks while a clone runs', () => {
  let h: Harness;
  before(async () => (h = await startHarness({ ...FAST, linkedCloneMs: 900, flockTimeoutMs: 300 })));
  after(() => h.close());

  test('start and destroy of the new VM fail with the flock timeout; config fails early with the lock', async () => {
    const clone = await h.call('POST', '/nodes/pve1/qemu/9000/clone', { form: { newid: '100', pool: 'pveflow' } });
    // The VM joins the pool only when the clone ends, so until then the pool token may not even look at it.
    assert.equal((await h.call('GET', '/nodes/pve1/qemu/100/config')).status, 403);
    const start = await h.call('POST', '/nodes/pve1/qemu/100/status/start', { as: 'root' });
    const destroy = await h.call('DELETE', '/nodes/pve1/qemu/100', { as: 'root' });
    const config = await h.call('POST', '/nodes/pve1/qemu/100/config', { form: { cores: '4' }, as: 'root' });
    assert.equal(config.statusText, 'VM is locked (clone)');
    const text = "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout";
    assert.equal((await h.waitTask(start.body!.data as string, 'root')).exitstatus, text);
    assert.equal((await h.waitTask(destroy.body!.data as string, 'root')).exitstatus, text);
    assert.equal((await h.waitTask(clone.body!.data as string)).exitstatus, 'OK');
  });

  test('two clones of one stopped template run in parallel; a racing clone of the same newid fails', async () => {
    const a = await h.call('POST', '/nodes/pve1/qemu/9000/clone', { form: { newid: '200', pool: 'pveflow' } });
    const b = await h.call('POST', '/nodes/pve1/qemu/9000/clone', { form: { newid: '201', pool: 'pveflow' } });
    const c = await h.call('POST', '/nodes/pve1/qemu/9000/clone', { form: { newid: '200', pool: 'pveflow' } });
    assert.equal(c.status, 500, 'the placeholder of the first clone already exists');
    assert.equal(c.statusText, 'unable to create VM 200: config file already exists');
    assert.equal((await h.waitTask(a.body!.data as string)).exitstatus, 'OK');
    assert.equal((await h.waitTask(b.body!.data as string)).exitstatus, 'OK');
  });
});

describe('storage', () => {
  let h: Harness;
  before(async () => (h = await startHarness()));
  after(() => h.close());

  test('snippet files on disk are listed as local:snippets/<f> for a caller with Datastore.Allocate', async () => {
    const dir = join(h.snippets, 'pve2', 'local');
    (await import('node:fs')).mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'a.yaml'), 'x');
    const r = await h.call('GET', '/nodes/pve2/storage/local/content?content=snippets');
    assert.deepEqual(
      (r.body!.data as { volid: string; content: string }[]).map((v) => [v.volid, v.content]),
      [['local:snippets/a.yaml', 'snippets']],
    );
    const onPve1 = await h.call('GET', '/nodes/pve1/storage/local/content');
    assert.deepEqual(onPve1.body!.data, [], 'local storage is per node');
    const storages = (await h.call('GET', '/nodes/pve1/storage?content=images')).body!.data as { storage: string; shared: number }[];
    assert.deepEqual(
      storages.map((s) => [s.storage, s.shared]),
      [
        ['local-lvm', 0],
        ['ceph', 1],
      ],
    );
  });
});
