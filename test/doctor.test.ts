import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import { NetbirdClient } from '../src/clients/netbird';
import { PveClient } from '../src/clients/pve';
import { loadConfig } from '../src/config';
import { checkNetbird, checkPve, checkTokenFormat, pveflowRolePrivileges, runDoctor, type Finding, type PveCheckSettings } from '../src/doctor';
import { simulatorTimings } from '../src/embedded/simulatorTimings';
import { createPveSimulator, defaultClusterSeed } from '../src/simulators/pve';
import { simulatorTls } from '../src/simulators/tls';
import { startSimulatedWorld, type SimulatedWorld } from '../src/simulators/world';
import { createActivityDeps } from '../src/worker';
import type { ActivityDeps } from '../src/activities/deps';

/**
 * `pveflow doctor` against the simulated world (token, template, snippets storage, SFTP, NetBird) and, for the
 * effective privileges, against a stub that answers `GET /access/permissions` the way Proxmox VE documents it.
 */
const dir = mkdtempSync(join(tmpdir(), 'pveflow-doctor-'));
const SECRET = '6a1c0c47-5b6e-4a53-9d7f-1c2b3d4e5f60';
const TOKEN = { id: 'pveflow@pve!automation', secret: SECRET };
const SETTINGS: PveCheckSettings & { snippetsDir: string } = {
  pool: 'pveflow', templateVmid: 9000, bridge: 'vmbr0', snippetsStorage: 'local', snippetsDir: '/var/lib/vz/snippets',
};

let world: SimulatedWorld;
let deps: ActivityDeps;
let token: { id: string; secret: string };

before(async () => {
  world = await startSimulatedWorld({ dir: join(dir, 'world'), timing: simulatorTimings.fast });
  const config = loadConfig({ ...world.env, PVE_TIMEOUT_MS: '5000', NETBIRD_TIMEOUT_MS: '5000' });
  deps = createActivityDeps(config);
  token = { id: config.PVE_TOKEN_ID!, secret: config.PVE_TOKEN_SECRET! };
});
after(async () => {
  await Promise.allSettled([deps?.pve.close(), deps?.netbird.close()]);
  await world?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const byCheck = (findings: Finding[], check: string) => findings.filter((f) => f.check === check);
const failed = (findings: Finding[]) => findings.filter((f) => !f.ok);

describe('doctor against the simulated world', () => {
  test('token, template, snippets storage, SFTP on every node and NetBird all pass', async (t) => {
    const findings = await runDoctor({ ...deps, token });
    for (const f of findings.filter((x) => x.check.startsWith('pve.privileges'))) t.diagnostic(`${f.ok ? 'ok' : 'FAIL'} ${f.check}: ${f.message}`);
    const others = findings.filter((f) => !f.check.startsWith('pve.privileges'));
    assert.deepEqual(failed(others), [], JSON.stringify(failed(others), null, 2));
    for (const check of ['pve.token-format', 'pve.auth', 'pve.template', 'pve.template.is-template', 'pve.template.agent', 'pve.template.cloudinit', 'pve.snippets', 'sftp pve1', 'sftp pve2', 'sftp pve3', 'netbird.token']) {
      assert.equal(byCheck(findings, check).length, 1, `one finding for ${check}`);
    }
    // Privileges are asked where PVE checks them: the pool, the template, the template's disk storage (ceph),
    // the snippets storage, the bridge's SDN zone and the root — or, while the simulator cannot answer
    // GET /access/permissions, one finding says so instead of six.
    const privileges = findings.filter((f) => f.check.startsWith('pve.privileges')).map((f) => f.check);
    if (privileges.length === 1) {
      assert.deepEqual(privileges, ['pve.privileges']);
      assert.match(findings.find((f) => f.check === 'pve.privileges')!.message, /cannot report effective privileges: .*501/);
    } else {
      assert.deepEqual(privileges.map((c) => c.slice('pve.privileges '.length)),
        ['/pool/pveflow', '/vms/9000', '/storage/ceph', '/storage/local', '/sdn/zones/localnetwork/vmbr0', '/']);
    }
  });

  test('the SFTP probe leaves nothing behind in the snippets directories', async () => {
    await runDoctor({ ...deps, token });
    for (const node of ['pve1', 'pve2', 'pve3']) {
      const d = world.snippetsDirOf(node);
      const left = existsSync(d) ? readdirSync(d).filter((f) => f.includes('pveflow-doctor')) : [];
      assert.deepEqual(left, [], node);
    }
  });

  test('a wrong host key and a node without an SSH address are named with what to fix', async () => {
    const findings = await runDoctor({
      ...deps,
      token,
      sftpTarget: (node) => {
        if (node === 'pve3') throw new Error('node pve3 has no SSH_NODES address or SSH_HOST_FINGERPRINTS entry');
        const t = deps.sftpTarget(node);
        return node === 'pve2' ? { ...t, hostKeyFingerprint: `SHA256:${'A'.repeat(43)}` } : t;
      },
    });
    assert.equal(byCheck(findings, 'sftp pve1')[0]!.ok, true);
    const [pve2] = byCheck(findings, 'sftp pve2');
    assert.equal(pve2!.ok, false);
    assert.match(pve2!.message, /does not match the pinned fingerprint/);
    assert.match(pve2!.fix!, /SSH_HOST_FINGERPRINTS/);
    const [pve3] = byCheck(findings, 'sftp pve3');
    assert.equal(pve3!.ok, false);
    assert.match(pve3!.fix!, /add pve3 to SSH_NODES/);
  });

  test('a rejected NetBird token fails with how to get a new one', async () => {
    const bad = new NetbirdClient({ baseUrl: world.env.NETBIRD_API_URL, token: 'nbp_thisisnotavalidtokenatall0000000000', ca: readCa(), timeoutMs: 5_000, retry: { attempts: 1 } });
    try {
      const finding = await checkNetbird(bad);
      assert.equal(finding.ok, false);
      assert.match(finding.message, /rejects the token/);
      assert.match(finding.fix!, /NETBIRD_TOKEN/);
      assert.ok(!JSON.stringify(finding).includes('thisisnotavalidtoken'), 'the token is not echoed');
    } finally {
      await bad.close();
    }
  });

  test('a wrong token secret stops the Proxmox checks at authentication, with the fix', async () => {
    const pve = new PveClient({ endpoint: world.env.PVE_ENDPOINT, tokenId: token.id, tokenSecret: '00000000-0000-4000-8000-000000000000', ca: readCa(), timeoutMs: 5_000 });
    try {
      const { findings, nodes } = await checkPve({ pve, token: { ...token, secret: '00000000-0000-4000-8000-000000000000' }, settings: SETTINGS });
      assert.equal(nodes, undefined);
      assert.deepEqual(findings.map((f) => [f.check, f.ok]), [['pve.token-format', true], ['pve.auth', false]]);
      assert.match(findings[1]!.fix!, /pveum user token list pveflow@pve/);
    } finally {
      await pve.close();
    }
  });
});

function readCa(): string {
  return readFileSync(world.env.PVE_CA_FILE, 'utf8');
}

describe('doctor against a simulator with a broken template and storage', () => {
  test('not a template, agent off, no cloud-init drive, no snippets content: each named with its fix', async () => {
    const seed = defaultClusterSeed({ tokenSecret: SECRET });
    const template = seed.vms[0]!;
    delete template.config.template;
    template.config.agent = 'enabled=0,fstrim_cloned_disks=1';
    delete template.config.ide2;
    seed.storages = seed.storages.map((s) => (s.id === 'local' ? { ...s, content: ['iso', 'vztmpl'] } : s));
    mkdirSync(join(dir, 'broken'), { recursive: true });
    const tls = await simulatorTls(join(dir, 'broken'));
    const sim = createPveSimulator({ seed, timing: simulatorTimings.fast, snippetsDir: (node) => join(dir, 'broken', node) });
    const server = await sim.listen({ tls });
    const pve = new PveClient({ endpoint: new URL(server.url).origin, tokenId: TOKEN.id, tokenSecret: SECRET, ca: tls.ca, timeoutMs: 5_000 });
    try {
      const { findings } = await checkPve({ pve, token: TOKEN, settings: { ...SETTINGS, nodeSelector: ['pve1', 'pve2'] } });
      const get = (check: string) => byCheck(findings, check)[0]!;
      assert.equal(get('pve.template').ok, true);
      assert.equal(get('pve.template.is-template').ok, false);
      assert.match(get('pve.template.is-template').fix!, /qm template 9000/);
      assert.equal(get('pve.template.agent').ok, false);
      assert.match(get('pve.template.agent').fix!, /qm set 9000 --agent enabled=1/);
      assert.equal(get('pve.template.cloudinit').ok, false);
      assert.match(get('pve.template.cloudinit').fix!, /--ide2 <storage>:cloudinit/);
      // Only the selected nodes are checked, each with the exact command.
      assert.deepEqual(findings.filter((f) => f.check.startsWith('pve.snippets')).map((f) => [f.check, f.ok, f.fix]), [
        ['pve.snippets pve1', false, 'pvesm set local --content iso,vztmpl,snippets'],
        ['pve.snippets pve2', false, 'pvesm set local --content iso,vztmpl,snippets'],
      ]);
    } finally {
      await pve.close();
      await server.close();
    }
  });

  test('a template VMID that does not exist says how to prepare one', async () => {
    const { findings } = await checkPve({ pve: deps.pve, token, settings: { ...SETTINGS, templateVmid: 9999 } });
    const [f] = byCheck(findings, 'pve.template');
    assert.equal(f!.ok, false);
    assert.match(f!.message, /template VM 9999 does not exist, or the token cannot see it/);
    assert.match(f!.fix!, /pveum pool modify pveflow --vms 9999/);
  });
});

describe('effective privileges (GET /access/permissions, as PVE documents it)', () => {
  /** What the token holds on each path: a privsep token restricted to the pool, missing a few privileges. */
  let grants: Record<string, string[]>;
  let version = '9.1.3';
  let server: Server;
  let pve: PveClient;
  const asked: string[] = [];

  before(async () => {
    const app = express();
    const data = (res: express.Response, value: unknown) => res.json({ data: value });
    app.get('/api2/json/version', (_req, res) => data(res, { version, release: version.split('.').slice(0, 2).join('.') }));
    app.get('/api2/json/cluster/resources', (_req, res) => data(res, [{ id: 'qemu/9000', type: 'qemu', vmid: 9000, node: 'pve1', template: 1 }]));
    app.get('/api2/json/nodes/pve1/qemu/9000/config', (_req, res) =>
      data(res, { name: 'tpl', template: 1, agent: '1', scsi0: 'ceph:base-9000-disk-0,size=4G', ide2: 'ceph:vm-9000-cloudinit,media=cdrom', ide0: 'local:iso/debian.iso,media=cdrom' }));
    app.get('/api2/json/nodes', (_req, res) => data(res, [{ node: 'pve1', status: 'online' }, { node: 'pve2', status: 'offline' }]));
    app.get('/api2/json/nodes/pve1/storage', (_req, res) => data(res, [{ storage: 'local', content: 'iso,snippets', active: 1, enabled: 1 }]));
    app.get('/api2/json/access/permissions', (req, res) => {
      const path = String(req.query.path);
      asked.push(path);
      data(res, { [path]: Object.fromEntries((grants[path] ?? []).map((p) => [p, 1])) });
    });
    server = await new Promise<Server>((ok) => {
      const s = app.listen(0, '127.0.0.1', () => ok(s));
    });
    pve = new PveClient({ endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, tokenId: TOKEN.id, tokenSecret: SECRET, timeoutMs: 5_000 });
  });
  after(async () => {
    await pve.close();
    await new Promise<void>((ok) => server.close(() => ok()));
  });

  const everything = (major: number): Record<string, string[]> => {
    const all = pveflowRolePrivileges(major);
    return Object.fromEntries(['/pool/pveflow', '/vms/9000', '/storage/ceph', '/storage/local', '/sdn/zones/localnetwork/vmbr0', '/'].map((p) => [p, all]));
  };

  test('a token holding the PVEflow role everywhere passes every privilege check', async () => {
    grants = everything(9);
    asked.length = 0;
    const { findings } = await checkPve({ pve, token: TOKEN, settings: SETTINGS });
    assert.deepEqual(failed(findings), []);
    // The ISO on ide0 is not a storage clones allocate on; pve2 is offline and not checked for snippets.
    assert.deepEqual(asked, ['/pool/pveflow', '/vms/9000', '/storage/ceph', '/storage/local', '/sdn/zones/localnetwork/vmbr0', '/']);
  });

  test('an under-privileged token gets exactly the missing privileges listed, per path, with the grant command', async () => {
    version = '9.1.3';
    grants = {
      ...everything(9),
      '/pool/pveflow': pveflowRolePrivileges(9).filter((p) => !['Pool.Allocate', 'VM.GuestAgent.Audit', 'VM.Config.Cloudinit'].includes(p)),
      '/sdn/zones/localnetwork/vmbr0': [],
      '/': ['Sys.Audit'],
      '/storage/ceph': ['Datastore.Audit'],
    };
    const { findings } = await checkPve({ pve, token: TOKEN, settings: SETTINGS });
    const bad = failed(findings);
    assert.deepEqual(bad.map((f) => f.check), ['pve.privileges /pool/pveflow', 'pve.privileges /storage/ceph', 'pve.privileges /sdn/zones/localnetwork/vmbr0']);
    assert.match(bad[0]!.message, /^the token lacks on \/pool\/pveflow: VM\.Config\.Cloudinit, VM\.GuestAgent\.Audit or VM\.GuestAgent\.Unrestricted, Pool\.Allocate — needed to /);
    assert.match(bad[1]!.message, /^the token lacks on \/storage\/ceph: Datastore\.AllocateSpace — /);
    assert.match(bad[2]!.message, /^the token lacks on \/sdn\/zones\/localnetwork\/vmbr0: SDN\.Use — /);
    assert.match(bad[0]!.fix!, /pveum acl modify \/pool\/pveflow --roles PVEflow --users pveflow@pve/);
    assert.match(bad[0]!.fix!, /--tokens 'pveflow@pve!automation'/);
  });

  test('on PVE 8 the guest agent needs VM.Monitor, and VM.GuestAgent.Audit does not stand in for it', async () => {
    version = '8.2.4';
    grants = { ...everything(9) };
    const { findings } = await checkPve({ pve, token: TOKEN, settings: SETTINGS });
    assert.deepEqual(failed(findings).map((f) => f.message.split(' — ')[0]), ['the token lacks on /pool/pveflow: VM.Monitor']);
    grants = everything(8);
    assert.deepEqual(failed((await checkPve({ pve, token: TOKEN, settings: SETTINGS })).findings), []);
  });
});

describe('token format', () => {
  test('a well-formed id and UUID secret pass', () => {
    assert.deepEqual(checkTokenFormat(TOKEN).map((f) => f.ok), [true]);
  });

  test('a pasted header, a non-UUID secret and an id without token name each say what to set', () => {
    const header = checkTokenFormat({ id: TOKEN.id, secret: `PVEAPIToken=${TOKEN.id}=${SECRET}` });
    assert.equal(header[0]!.ok, false);
    assert.match(header[0]!.fix!, /the UUID alone/);
    assert.ok(!JSON.stringify(header).includes(SECRET), 'the secret is never echoed');
    assert.match(checkTokenFormat({ id: TOKEN.id, secret: 'hunter2' })[0]!.message, /not a UUID/);
    assert.match(checkTokenFormat({ id: 'pveflow@pve', secret: SECRET })[0]!.message, /not user@realm!tokenname/);
  });
});

describe('docs/operations.md', () => {
  test("the role it tells operators to create holds exactly the privileges the doctor checks", () => {
    const doc = readFileSync(join(__dirname, '..', 'docs', 'operations.md'), 'utf8');
    const privs = /pveum role add PVEflow --privs "([^"]+)"/.exec(doc)?.[1]?.split(' ');
    assert.deepEqual(privs, pveflowRolePrivileges(9));
  });
});
