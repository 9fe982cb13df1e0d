import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { Agent, request } from 'undici';
import { startPveHarness, HARNESS_ROOT_SECRET, HARNESS_SECRET, type PveHarness } from '../src/simulators/pve/harness';
import { defaultClusterSeed, ROOT_TOKEN_ID, type PveTiming } from '../src/simulators/pve';

/**
 * What third-party Proxmox clients need beyond pveflow's own calls: `/cluster/status` (go-proxmox asks it before
 * a clone to a free id), the guest agent's osinfo/host-name and the generic agent command (wait-for-agent loops),
 * a MAC for a NIC set without one (proxmoxer users set `net0=virtio,bridge=vmbr0`), and gzip as pveproxy sends it.
 */
const FAST: Partial<PveTiming> = {
  linkedCloneMs: 20,
  configMs: 5,
  startMs: 10,
  stopMs: 10,
  destroyMs: 10,
  // Long enough that the call right after the start still finds the agent down on a loaded machine.
  agentStartMs: 1500,
  ipv4AfterAgentMs: 10,
  flockTimeoutMs: 400,
  authFailureDelayMs: 10,
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const POOL_ONLY = 'pveflow@pve!poolonly';
let h: PveHarness;
before(async () => {
  // A token with the pool's roles only (no Sys.Audit on /), beside the harness's own.
  const seed = defaultClusterSeed({ tokenSecret: HARNESS_SECRET, rootTokenSecret: HARNESS_ROOT_SECRET });
  seed.tokens.push({ tokenid: POOL_ONLY, secret: 'pool-only-secret', privsep: true });
  seed.acls.push({ path: '/pool/pveflow', subject: POOL_ONLY, role: 'PVEVMAdmin' });
  h = await startPveHarness({ timing: FAST, seed });
});
after(() => h.close());

describe('cluster status', () => {
  test('one cluster entry and one entry per node, as pvecm reports them', async () => {
    const r = await h.call('GET', '/cluster/status', { as: 'root' });
    assert.equal(r.status, 200);
    const entries = r.body!.data as Record<string, unknown>[];
    assert.deepEqual(entries[0], { type: 'cluster', id: 'cluster', name: 'pveflow-sim', nodes: 3, quorate: 1, version: 3 });
    assert.deepEqual(
      entries.slice(1).map((e) => [e.type, e.id, e.name, e.nodeid, e.online, e.local]),
      [
        ['node', 'node/pve1', 'pve1', 1, 1, 1],
        ['node', 'node/pve2', 'pve2', 2, 1, 0],
        ['node', 'node/pve3', 'pve3', 3, 1, 0],
      ],
    );
    for (const e of entries.slice(1)) assert.match(String(e.ip), /^\d+\.\d+\.\d+\.\d+$/);
  });

  test('an offline node is not online; losing the majority, or a quorum-loss fault, loses quorum', async () => {
    h.sim.faults.set({ nodeOffline: { node: 'pve2', error: 'refused' } });
    try {
      let entries = (await h.call('GET', '/cluster/status', { as: 'root' })).body!.data as Record<string, unknown>[];
      assert.equal(entries.find((e) => e.name === 'pve2')!.online, 0);
      assert.equal(entries[0]!.quorate, 1, 'two of three nodes are a majority');
      h.sim.faults.set({ nodeOffline: { node: 'pve1', error: 'refused' } });
      entries = (await h.call('GET', '/cluster/status', { as: 'root' })).body!.data as Record<string, unknown>[];
      assert.equal(entries[0]!.quorate, 0);
      assert.deepEqual(
        entries.filter((e) => e.local === 1).map((e) => e.name),
        ['pve3'],
        'the node still up answers',
      );
    } finally {
      h.sim.faults.clear('nodeOffline');
    }
    h.sim.faults.set({ quorumLoss: {} });
    try {
      const entries = (await h.call('GET', '/cluster/status', { as: 'root' })).body!.data as Record<string, unknown>[];
      assert.deepEqual([entries[0]!.quorate, entries.filter((e) => e.online === 1).length], [0, 3], 'corosync lost quorum, the nodes are up');
    } finally {
      h.sim.faults.clear('quorumLoss');
    }
  });

  test('needs Sys.Audit on /: a token with only its pool roles is refused', async () => {
    const r = await h.call('GET', '/cluster/status', { auth: `PVEAPIToken=${POOL_ONLY}=pool-only-secret` });
    assert.equal(r.status, 403);
    assert.equal(r.statusText, 'Permission check failed (/, Sys.Audit)');
    const ok = await h.call('GET', '/cluster/status');
    assert.equal(ok.status, 200, 'the default token holds Sys.Audit on / (for the doctor)');
  });
});

describe('guest agent and NICs on a clone', () => {
  const vmid = 310;
  before(async () => {
    const clone = await h.task('POST', '/nodes/pve1/qemu/9000/clone', { form: { newid: String(vmid), name: 'agent-vm', pool: 'pveflow' } });
    assert.equal(clone.exitstatus, 'OK');
  });

  test('net0 set without a MAC gets one under BC:24:11, the model kept in front, the rest sorted', async () => {
    const before = (await h.call('GET', `/nodes/pve1/qemu/${vmid}/config`)).body!.data as Record<string, string>;
    const put = await h.call('PUT', `/nodes/pve1/qemu/${vmid}/config`, { form: { net0: 'virtio,firewall=1,bridge=vmbr0' } });
    assert.equal(put.status, 200, put.raw);
    const cfg = (await h.call('GET', `/nodes/pve1/qemu/${vmid}/config`)).body!.data as Record<string, string>;
    assert.match(cfg.net0!, /^virtio=BC:24:11:[0-9A-F]{2}:[0-9A-F]{2}:[0-9A-F]{2},bridge=vmbr0,firewall=1$/);
    assert.notEqual(cfg.net0!.slice(0, 24), before.net0!.slice(0, 24), 'a NIC given without a MAC gets a new one');

    await h.call('PUT', `/nodes/pve1/qemu/${vmid}/config`, { form: { net1: 'e1000=02:AA:BB:CC:DD:EE,bridge=vmbr1,tag=7' } });
    const kept = (await h.call('GET', `/nodes/pve1/qemu/${vmid}/config`)).body!.data as Record<string, string>;
    assert.equal(kept.net1, 'e1000=02:AA:BB:CC:DD:EE,bridge=vmbr1,tag=7', 'a given MAC is kept');
  });

  test("osinfo and host-name answer once the agent is up; before that PVE's agent errors", async () => {
    const down = await h.call('GET', `/nodes/pve1/qemu/${vmid}/agent/get-osinfo`);
    assert.equal(down.status, 500);
    assert.equal(down.statusText, `VM ${vmid} is not running`);

    const userData = '#cloud-config\nhostname: kali-07\nfqdn: kali-07.lab.example\n';
    mkdirSync(join(h.dir, 'pve1', 'local'), { recursive: true });
    writeFileSync(join(h.dir, 'pve1', 'local', `user-${vmid}.yaml`), userData);
    await h.call('PUT', `/nodes/pve1/qemu/${vmid}/config`, { form: { cicustom: `user=local:snippets/user-${vmid}.yaml` } });
    assert.equal((await h.task('POST', `/nodes/pve1/qemu/${vmid}/status/start`)).exitstatus, 'OK');
    const early = await h.call('GET', `/nodes/pve1/qemu/${vmid}/agent/get-host-name`);
    assert.equal(early.statusText, 'QEMU guest agent is not running');

    await sleep(FAST.agentStartMs! + 30);
    const os = await h.call('GET', `/nodes/pve1/qemu/${vmid}/agent/get-osinfo`);
    assert.equal(os.status, 200);
    const info = (os.body!.data as { result: Record<string, string> }).result;
    assert.equal(info.id, 'debian');
    assert.equal(info['version-id'], '12');
    assert.equal(info.machine, 'x86_64');

    const host = await h.call('GET', `/nodes/pve1/qemu/${vmid}/agent/get-host-name`);
    assert.deepEqual(host.body!.data, { result: { 'host-name': 'kali-07' } }, 'the name cloud-init gave the guest');
  });

  test('POST agent runs a read command by name, and refuses what the simulated guest cannot do', async () => {
    const ping = await h.call('POST', `/nodes/pve1/qemu/${vmid}/agent`, { form: { command: 'ping' }, as: 'root' });
    assert.deepEqual(ping.body!.data, { result: {} });
    const os = await h.call('POST', `/nodes/pve1/qemu/${vmid}/agent`, { form: { command: 'get-osinfo' }, as: 'root' });
    assert.equal((os.body!.data as { result: { id: string } }).result.id, 'debian');
    const nics = await h.call('POST', `/nodes/pve1/qemu/${vmid}/agent`, { form: { command: 'network-get-interfaces' }, as: 'root' });
    const eth0 = (nics.body!.data as { result: { name: string; 'hardware-address': string }[] }).result.find((n) => n.name === 'eth0')!;
    const cfg = (await h.call('GET', `/nodes/pve1/qemu/${vmid}/config`)).body!.data as Record<string, string>;
    assert.equal(eth0['hardware-address'], /=([0-9A-F:]{17})/.exec(cfg.net0!)![1]!.toLowerCase(), 'the guest sees the generated MAC');

    const freeze = await h.call('POST', `/nodes/pve1/qemu/${vmid}/agent`, { form: { command: 'fsfreeze-freeze' }, as: 'root' });
    assert.equal(freeze.status, 500);
    assert.match(freeze.body!.message!, /qga command 'guest-fsfreeze-freeze' failed/);
  });

  test('POST agent needs VM.GuestAgent.Unrestricted, which PVEVMAdmin on the pool holds', async () => {
    const r = await h.call('POST', `/nodes/pve1/qemu/${vmid}/agent`, { form: { command: 'get-host-name' } });
    assert.equal(r.status, 200, r.raw);
  });
});

describe('gzip as pveproxy sends it', () => {
  const get = (path: string, encoding?: string) =>
    request(`${h.url}${path}`, {
      headers: { authorization: `PVEAPIToken=${ROOT_TOKEN_ID}=${HARNESS_ROOT_SECRET}`, ...(encoding ? { 'accept-encoding': encoding } : {}) },
      dispatcher: new Agent({ connect: { ca: readFileSync(join(h.dir, 'sim-ca.pem'), 'utf8') } }),
    });

  test('a body over 1 KiB is gzipped when the client accepts gzip, with the compressed length', async () => {
    const res = await get('/cluster/resources', 'gzip, deflate');
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-encoding'], 'gzip');
    const bytes = Buffer.from(await res.body.arrayBuffer());
    assert.equal(Number(res.headers['content-length']), bytes.length);
    const data = (JSON.parse(gunzipSync(bytes).toString('utf8')) as { data: unknown[] }).data;
    assert.ok(data.length > 3);
  });

  test('no gzip without Accept-Encoding, for deflate alone, or for a small body', async () => {
    for (const [path, enc] of [
      ['/cluster/resources', undefined],
      ['/cluster/resources', 'deflate'],
      ['/version', 'gzip'],
    ] as const) {
      const res = await get(path, enc);
      assert.equal(res.headers['content-encoding'], undefined, `${path} ${enc}`);
      JSON.parse(await res.body.text());
    }
  });
});
