import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { request } from 'undici';
import { ConfigError } from '../src/config';
import { doctorEnvironment } from '../src/doctor/environment';
import { createLogger } from '../src/observability';
import { isBundlerReport, sdkLoggerFrom } from '../src/observability/sdkLogger';
import { embeddedWorldAccessFile, readWorldAccessFile, writeWorldAccessFile, type WorldAccess } from '../src/simulators/inspection';
import { createNetbirdSimulator } from '../src/simulators/netbird';
import { loadWorldState, resetWorldState, WORLD_STATE_FILE, WorldSaver, type WorldSnapshot } from '../src/simulators/persistence';
import { createPveSimulator, defaultClusterSeed, type GuestBoot } from '../src/simulators/pve';
import { HARNESS_ROOT_SECRET, HARNESS_SECRET, startPveHarness } from '../src/simulators/pve/harness';

/**
 * The pieces of a simulated world that outlives its process, each on its own: the simulators' snapshots and their
 * restore, the state file's writer and reader, the credentials file, and the doctor's way to it.
 */
const dir = mkdtempSync(join(tmpdir(), 'pveflow-sim-state-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('the Proxmox VE simulator restored from its snapshot', () => {
  test('keeps guests, their leases and tasks; a task running at the snapshot died with it; a booting guest boots', async () => {
    const h = await startPveHarness({ timing: { createMs: 5, startMs: 5, configMs: 5, agentStartMs: 5, ipv4AfterAgentMs: 0, linkedCloneMs: 3_000 } });
    try {
      const created = await h.task('POST', '/nodes/pve2/qemu', { form: { vmid: '200', name: 'kept', pool: 'pveflow', scsi0: 'ceph:1', net0: 'virtio,bridge=vmbr0', agent: '1', memory: '1024' } });
      assert.equal(created.exitstatus, 'OK');
      assert.equal((await h.task('POST', '/nodes/pve2/qemu/200/status/start')).exitstatus, 'OK');
      await new Promise((r) => setTimeout(r, 50)); // the agent's 5 ms (a fixed test timing, not an assertion)
      const clone = await h.call('POST', '/nodes/pve1/qemu/9000/clone', { form: { newid: '201', name: 'half', pool: 'pveflow' } });
      assert.equal(clone.status, 200, clone.raw);
      const snapshot = JSON.parse(JSON.stringify(h.sim.snapshot()));
      assert.equal(snapshot.tasks.find((t: { upid: string }) => t.upid === clone.body!.data).status, 'running', 'the clone was under way');
      const kept = snapshot.vms.find((v: { vmid: number }) => v.vmid === 200);
      assert.equal(kept.run.guestBooted, true);

      const boots: GuestBoot[] = [];
      const restore = structuredClone(snapshot);
      delete restore.vms.find((v: { vmid: number }) => v.vmid === 200).run.guestBooted; // as if stopped mid-boot
      const again = createPveSimulator({
        seed: defaultClusterSeed({ tokenSecret: HARNESS_SECRET, rootTokenSecret: HARNESS_ROOT_SECRET }),
        timing: { agentStartMs: 5 },
        snippetsDir: (node, storage) => join(h.dir, node, storage),
        onGuestBoot: (b) => boots.push(b),
        restore,
      });
      const dump = again.dump();
      assert.deepEqual(dump.vms.map((v) => v.vmid).sort(), [200, 201, 9000]);
      assert.equal(dump.vms.find((v) => v.vmid === 200)!.status, 'running');
      assert.equal(dump.vms.find((v) => v.vmid === 201)!.lock, 'clone', 'the half-made clone keeps its lock, as PVE leaves it');
      const task = dump.tasks.find((t) => t.upid === clone.body!.data)!;
      assert.deepEqual([task.status, task.exitstatus], ['stopped', 'unexpected status']);
      assert.equal(again.snapshot().vms.find((v) => v.vmid === 200)!.run!.ipv4, kept.run.ipv4, 'the guest keeps its lease');
      assert.equal(again.snapshot().nextLease, snapshot.nextLease, 'the next guest gets a new address, not this one');
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(
        boots.map((b) => b.vmid),
        [200],
        'the guest that was booting finishes its boot, once',
      );
    } finally {
      await h.close();
    }
  });
});

describe('the NetBird simulator restored from its snapshot', () => {
  test('keeps users, groups, setup keys and peers; addresses and DNS labels stay taken; every change is told', async () => {
    let changes = 0;
    const token = 'nbp_persistenceTestToken000000000000';
    const sim = createNetbirdSimulator({ tokens: [token], users: [{ email: 'owner@x.example', name: 'Owner' }], onChange: () => changes++ });
    const server = await sim.listen({});
    try {
      const post = async (path: string, body: unknown) => {
        const res = await request(`${server.url}${path}`, { method: 'POST', headers: { authorization: `Token ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
        const json = (await res.body.json()) as { id: string; key: string };
        assert.equal(res.statusCode, 200, JSON.stringify(json));
        return json;
      };
      const group = await post('/api/groups', { name: 'devices' });
      const key = await post('/api/setup-keys', { name: 'vm key', type: 'reusable', expires_in: 86_400, auto_groups: [group.id], usage_limit: 0 });
      const first = sim.enrollPeer({ setupKey: key.key, hostname: 'vm-a' })!;
      await new Promise((r) => setImmediate(r));
      assert.ok(changes >= 3, `the group, the key and the enrollment were told (${changes})`);

      const again = createNetbirdSimulator({ tokens: [token], users: [{ email: 'someone@else.example', name: 'Other' }], restore: JSON.parse(JSON.stringify(sim.snapshot())) });
      assert.deepEqual(again.dump(), sim.dump());
      const second = again.enrollPeer({ setupKey: key.key, hostname: 'vm-a' })!;
      assert.notEqual(second.ip, first.ip, 'a restored peer keeps its address');
      assert.notEqual(second.dnsLabel, first.dnsLabel, 'and its DNS label');
      assert.ok(second.groupIds.includes(group.id), 'the setup key still puts peers into its group');
    } finally {
      await server.close();
    }
  });
});

describe('the state file', () => {
  const snapshotOf = (n: number): WorldSnapshot => ({
    format: 'pveflow-simulated-world',
    version: 1,
    savedAt: new Date().toISOString(),
    secrets: { pveToken: `t${n}`, pveRootToken: 'r', netbirdToken: 'n' },
    sftp: { client: { privateKey: 'k', publicKey: 'p' }, nodes: {} },
    pve: { vms: [], ha: [], tasks: [], allocations: {}, nextLease: n },
    netbird: { allGroupId: 'g', users: [], peers: [], groups: [], policies: [], setupKeys: [] },
  });

  test('the saver writes the newest state whole, for its owner only, and nothing once stopped', async () => {
    const d = join(dir, 'saver');
    mkdirSync(d);
    let n = 0;
    let calls = 0;
    const saver = new WorldSaver(join(d, WORLD_STATE_FILE), () => (calls++, snapshotOf(n)), 20);
    for (n = 1; n <= 3; n++) saver.changed();
    n = 3;
    await saver.stop();
    assert.equal(loadWorldState(d)!.pve.nextLease, 3);
    assert.equal(statSync(join(d, WORLD_STATE_FILE)).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(d), [WORLD_STATE_FILE], 'no temporary file is left');
    const before = calls;
    saver.changed();
    await new Promise((r) => setTimeout(r, 100)); // five debounce periods (a test timing, not an assertion)
    assert.equal(calls, before, 'a stopped saver takes no snapshot');
  });

  test('an unreadable or foreign state file is refused with the file named and the way out', () => {
    const d = join(dir, 'bad');
    mkdirSync(d);
    writeFileSync(join(d, `${WORLD_STATE_FILE}.4242.tmp`), '{"format":"pveflow-sim');
    assert.equal(loadWorldState(d), undefined, 'no file: a new world');
    assert.deepEqual(readdirSync(d), [], 'the leftover of a write cut short is removed');
    writeFileSync(join(d, WORLD_STATE_FILE), '{"format":"pveflow-simulated-world",');
    assert.throws(
      () => loadWorldState(d),
      (err: Error) => err.message.includes(join(d, WORLD_STATE_FILE)) && /cannot be read/.test(err.message) && /--reset-sim/.test(err.message),
    );
    writeFileSync(join(d, WORLD_STATE_FILE), JSON.stringify({ ...snapshotOf(1), version: 99 }));
    assert.throws(() => loadWorldState(d), /is not one this pveflow reads \(version: .*--reset-sim/);
  });

  test('a reset forgets the state and the snippets, and keeps the CA', () => {
    const d = join(dir, 'reset');
    mkdirSync(join(d, 'nodes', 'pve1', 'snippets'), { recursive: true });
    writeFileSync(join(d, 'nodes', 'pve1', 'snippets', 'pveflow-vm-x.yaml'), '#cloud-config\n');
    writeFileSync(join(d, 'sim-ca.pem'), 'CA');
    writeFileSync(join(d, WORLD_STATE_FILE), '{}');
    assert.deepEqual(resetWorldState(d), { hadState: true });
    assert.equal(existsSync(join(d, WORLD_STATE_FILE)), false);
    assert.equal(existsSync(join(d, 'nodes', 'pve1', 'snippets')), false);
    assert.equal(readFileSync(join(d, 'sim-ca.pem'), 'utf8'), 'CA');
    assert.deepEqual(resetWorldState(d), { hadState: false });
  });
});

describe('the credentials file', () => {
  const access: WorldAccess = {
    PVE_ENDPOINT: 'https://127.0.0.1:8006',
    PVE_TOKEN_ID: 'pveflow@pve!automation',
    PVE_TOKEN_SECRET: 'secret-1',
    PVE_ROOT_TOKEN_ID: 'root@pam!pveflow-tests',
    PVE_ROOT_TOKEN_SECRET: 'secret-2',
    PVE_CA_FILE: '/d/sim/sim-ca.pem',
    PVE_POOL: 'pveflow',
    PVE_TEMPLATE_VMID: '9000',
    PVE_SNIPPETS_DIR: '/var/lib/vz/snippets',
    SSH_USER: 'root',
    SSH_PRIVATE_KEY_FILE: '/d/sim/pveflow-ssh.key',
    SSH_NODES: 'pve1=127.0.0.1:2201',
    SSH_HOST_FINGERPRINTS: 'pve1=SHA256:abc',
    NETBIRD_API_URL: 'https://127.0.0.1:33073',
    NETBIRD_TOKEN: 'nbp_x',
    NETBIRD_CA_FILE: '/d/sim/sim-ca.pem',
  };

  test('is for its owner only, reads back as written, and a shell sources it as it is', (t) => {
    const file = join(dir, 'credentials.env');
    writeWorldAccessFile(file, access);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(readWorldAccessFile(file), access);
    const sh = spawnSync('bash', ['-c', `set -a; . '${file}'; set +a; printf '%s|%s' "$PVE_TOKEN_ID" "$PVE_ROOT_TOKEN_SECRET"`], { encoding: 'utf8' });
    if (sh.error) return t.skip('bash is not installed');
    assert.equal(sh.stdout, 'pveflow@pve!automation|secret-2');
    assert.throws(() => writeWorldAccessFile(file, { ...access, PVE_CA_FILE: "/it's/ca.pem" }), /PVE_CA_FILE .* quote/);
  });

  test("pveflow doctor takes the embedded default's world from it when PVE_ENDPOINT is not set", () => {
    const dataDir = join(dir, 'data');
    assert.throws(
      () => doctorEnvironment({ DATA_DIR: dataDir }),
      (err: Error) => err instanceof ConfigError && err.message.includes(embeddedWorldAccessFile(dataDir)),
    );
    mkdirSync(join(dataDir, 'sim'), { recursive: true });
    writeWorldAccessFile(embeddedWorldAccessFile(dataDir), access);
    const { env, worldFile } = doctorEnvironment({ DATA_DIR: dataDir });
    assert.equal(worldFile, embeddedWorldAccessFile(dataDir));
    assert.equal(env.PVE_ENDPOINT, access.PVE_ENDPOINT);
    assert.equal(env.SSH_HOST_FINGERPRINTS, access.SSH_HOST_FINGERPRINTS);
    assert.equal(env.NETBIRD_TOKEN, access.NETBIRD_TOKEN);
    const realNetbird = doctorEnvironment({ DATA_DIR: dataDir, NETBIRD_API_URL: 'https://netbird.example', NETBIRD_TOKEN: 'real' });
    assert.equal(realNetbird.env.NETBIRD_TOKEN, 'real', 'a real NetBird configured stays the one checked');
    const real = doctorEnvironment({ DATA_DIR: dataDir, PVE_ENDPOINT: 'https://pve.example:8006' });
    assert.equal(real.worldFile, undefined, 'a real cluster configured is the one checked');
    assert.equal(real.env.PVE_TOKEN_SECRET, undefined);
  });
});

describe("the SDK's log lines", () => {
  test("the bundler's report goes to debug; the worker's other lines keep their level", () => {
    const lines: Array<{ level: string; msg: string }> = [];
    const logger = sdkLoggerFrom(createLogger({ level: 'debug', write: (l) => void lines.push(JSON.parse(l)) }));
    const webpack = 'asset workflow-bundle-46c0ccdf.js 1.8 MiB [emitted]\nmodules by path ./src/ 77.9 KiB\nwebpack 5.112.2 compiled successfully in 1364 ms';
    assert.ok(isBundlerReport(webpack));
    logger.info(webpack, { sdkComponent: 'worker' });
    logger.info('Workflow bundle created', { size: '1.80MB' });
    logger.info('Worker state changed', { state: 'RUNNING' });
    logger.error('webpack 5.112.2 compiled with 1 error', {});
    assert.deepEqual(
      lines.map((l) => l.level),
      ['debug', 'debug', 'info', 'error'],
    );
  });
});
