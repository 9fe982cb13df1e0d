import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import { NetbirdClient } from '../src/clients/netbird';
import { createNetbirdSimulator } from '../src/simulators/netbird';
import { PveApiError, PveClient } from '../src/clients/pve';
import { loadConfig } from '../src/config';
import { checkNetbird, checkNetbirdPropagation, checkPve, checkTokenFormat, policyExposures, pveflowRolePrivileges, requiredPrivileges, runDoctor, type Finding, type PveCheckSettings } from '../src/doctor';
import type { NetbirdPolicy } from '../src/clients/netbird';
import { simulatorTimings } from '../src/embedded/simulatorTimings';
import { permissionsSchema } from '../src/doctor/schemas';
import { createPveSimulator, defaultClusterSeed, ROOT_TOKEN_ID } from '../src/simulators/pve';
import { ROLES } from '../src/simulators/pve/permissions';
import { simulatorTls } from '../src/simulators/tls';
import { startSimulatedWorld, type SimulatedWorld } from '../src/simulators/world';
import { createActivityDeps } from '../src/worker';
import { pveflow } from './support/cliRunner';
import type { ActivityDeps } from '../src/activities/deps';

/**
 * `pveflow doctor` against the simulated world: token, effective privileges (`GET /access/permissions`), template,
 * snippets storage, SFTP, NetBird. Only PVE 8's VM.Monitor needs a stub: the simulator is a PVE 9.
 */
const dir = mkdtempSync(join(tmpdir(), 'pveflow-doctor-'));
const SECRET = '6a1c0c47-5b6e-4a53-9d7f-1c2b3d4e5f60';
const ROOT_SECRET = '0d9c8b7a-6f5e-4d3c-8b2a-190817263544';
const TOKEN = { id: 'pveflow@pve!automation', secret: SECRET };
const SETTINGS: PveCheckSettings & { snippetsDir: string } = {
  pool: 'pveflow',
  templateVmid: 9000,
  bridge: 'vmbr0',
  snippetsStorage: 'local',
  snippetsDir: '/var/lib/vz/snippets',
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
  test('token, privileges, template, snippets storage, SFTP on every node and NetBird all pass', async () => {
    const findings = await runDoctor({ ...deps, token });
    assert.deepEqual(failed(findings), [], JSON.stringify(failed(findings), null, 2));
    for (const check of [
      'pve.token-format',
      'pve.auth',
      'pve.template',
      'pve.template.is-template',
      'pve.template.agent',
      'pve.template.cloudinit',
      'pve.snippets',
      'pve.import-storage',
      'pve.bridges pve1',
      'pve.bridges pve2',
      'pve.bridges pve3',
      'sftp pve1',
      'sftp pve2',
      'sftp pve3',
      'netbird.token',
      'netbird.policies',
      'netbird.propagation',
    ]) {
      assert.equal(byCheck(findings, check).length, 1, `one finding for ${check}`);
    }
    // Privileges are asked where PVE checks them: the pool, the template, the template's disk storage (ceph),
    // the snippets storage (also the one that takes imports), the bridge's SDN zone, the zone itself (the doctor
    // lists bridges there) and each node (an import's download); nothing on / (no call of pveflow's needs it).
    const privileges = findings.filter((f) => f.check.startsWith('pve.privileges')).map((f) => f.check.slice('pve.privileges '.length));
    assert.deepEqual(privileges, ['/pool/pveflow', '/vms/9000', '/storage/ceph', '/storage/local', '/sdn/zones/localnetwork/vmbr0', '/sdn/zones/localnetwork', '/nodes/pve1', '/nodes/pve2', '/nodes/pve3']);
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

  test("NetBird with user group propagation off fails, naming the setting and the fix (grants reach a consultant's machine only through it)", async () => {
    const sim = createNetbirdSimulator({ tokens: ['nbp_doctorpropagation000000000000000000'], users: [{ email: 'owner@example.test', name: 'Owner' }], groupsPropagation: false });
    const listening = await sim.listen({});
    const off = new NetbirdClient({ baseUrl: listening.url, token: 'nbp_doctorpropagation000000000000000000', timeoutMs: 5_000, retry: { attempts: 1 } });
    try {
      const finding = await checkNetbirdPropagation(off);
      assert.equal(finding.ok, false);
      assert.equal(finding.check, 'netbird.propagation');
      assert.match(finding.message, /groups_propagation_enabled: false/);
      assert.match(finding.fix!, /user group propagation/);
    } finally {
      await off.close();
      await listening.close();
    }
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
      assert.deepEqual(
        findings.map((f) => [f.check, f.ok]),
        [
          ['pve.token-format', true],
          ['pve.auth', false],
        ],
      );
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
      assert.deepEqual(
        findings.filter((f) => f.check.startsWith('pve.snippets')).map((f) => [f.check, f.ok, f.fix]),
        [
          ['pve.snippets pve1', false, 'pvesm set local --content iso,vztmpl,snippets'],
          ['pve.snippets pve2', false, 'pvesm set local --content iso,vztmpl,snippets'],
        ],
      );
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

describe('effective privileges on the simulated cluster (GET /access/permissions)', () => {
  /**
   * The classic privilege-separation mistake: the user holds nearly everything, its token was granted less, and
   * a privsep token gets only what both hold. The user's pool role (a custom one) lacks the hardware type and the
   * guest agent; the token lacks space on ceph and the SDN zone.
   */
  const LOW = { id: 'lowpriv@pve!automation', secret: '1f0e2d3c-4b5a-4697-8877-665544332211' };
  let server: { url: string; close(): Promise<void> };
  let pve: PveClient;
  let rootPve: PveClient;

  before(async () => {
    const seed = defaultClusterSeed({ tokenSecret: SECRET, rootTokenSecret: ROOT_SECRET });
    const vmPrivs = ROLES.PVEVMAdmin!.filter((p) => p !== 'VM.Config.HWType' && !p.startsWith('VM.GuestAgent.'));
    seed.roles = { ...seed.roles, VMAdminNoGuest: [...vmPrivs] };
    seed.users.push({ userid: 'lowpriv@pve' });
    seed.tokens.push({ tokenid: LOW.id, secret: LOW.secret, privsep: true });
    const user = 'lowpriv@pve';
    seed.acls.push(
      { path: '/pool/pveflow', subject: user, role: 'VMAdminNoGuest' },
      { path: '/pool/pveflow', subject: user, role: 'PVEflowPool' },
      { path: '/storage', subject: user, role: 'PVEDatastoreUser' },
      { path: '/sdn/zones/localnetwork', subject: user, role: 'PVESDNUser' },
      { path: '/', subject: user, role: 'PVEflowAudit', propagate: false },
      { path: '/pool/pveflow', subject: LOW.id, role: 'PVEVMAdmin' },
      { path: '/storage/local', subject: LOW.id, role: 'PVEDatastoreUser' },
      { path: '/storage/ceph', subject: LOW.id, role: 'PVEAuditor' },
    );
    mkdirSync(join(dir, 'privileges'), { recursive: true });
    const tls = await simulatorTls(join(dir, 'privileges'));
    const sim = createPveSimulator({ seed, timing: simulatorTimings.fast, snippetsDir: (node) => join(dir, 'privileges', node) });
    server = await sim.listen({ tls });
    const endpoint = new URL(server.url).origin;
    pve = new PveClient({ endpoint, tokenId: LOW.id, tokenSecret: LOW.secret, ca: tls.ca, timeoutMs: 5_000 });
    rootPve = new PveClient({ endpoint, tokenId: ROOT_TOKEN_ID, tokenSecret: ROOT_SECRET, ca: tls.ca, timeoutMs: 5_000 });
  });
  after(async () => {
    await Promise.allSettled([pve?.close(), rootPve?.close()]);
    await server?.close();
  });

  test('an under-privileged token gets exactly the missing privileges listed, per path, with the grant command', async () => {
    const { findings } = await checkPve({ pve, token: LOW, settings: SETTINGS });
    const privileges = findings.filter((f) => f.check.startsWith('pve.privileges'));
    assert.deepEqual(
      privileges.map((f) => [f.check, f.ok]),
      [
        ['pve.privileges /pool/pveflow', false],
        ['pve.privileges /vms/9000', true],
        ['pve.privileges /storage/ceph', false],
        ['pve.privileges /storage/local', false],
        ['pve.privileges /sdn/zones/localnetwork/vmbr0', false],
        ['pve.privileges /sdn/zones/localnetwork', false],
        ['pve.privileges /nodes/pve1', false],
        ['pve.privileges /nodes/pve2', false],
        ['pve.privileges /nodes/pve3', false],
      ],
    );
    const lacks = privileges.filter((f) => !f.ok).map((f) => f.message.split(' — ')[0]);
    assert.deepEqual(lacks, [
      // Missing from the user (hardware type, guest agent) and from the token (space on ceph): privsep takes both away.
      'the token lacks on /pool/pveflow: VM.Config.HWType, VM.GuestAgent.Audit or VM.GuestAgent.Unrestricted, VM.GuestAgent.FileRead or VM.GuestAgent.Unrestricted',
      'the token lacks on /storage/ceph: Datastore.AllocateSpace',
      // The storage that takes imports: a user of it may not download into it nor remove what it downloaded.
      'the token lacks on /storage/local: Datastore.AllocateTemplate, Datastore.Allocate',
      'the token lacks on /sdn/zones/localnetwork/vmbr0: SDN.Use',
      'the token lacks on /sdn/zones/localnetwork: SDN.Audit',
      'the token lacks on /nodes/pve1: Sys.AccessNetwork',
      'the token lacks on /nodes/pve2: Sys.AccessNetwork',
      'the token lacks on /nodes/pve3: Sys.AccessNetwork',
    ]);
    const pool = privileges[0]!;
    assert.match(pool.message, / — needed to VM\.Config\.HWType \(write the SMBIOS metadata \(request serial, org, template\)\); /);
    assert.match(pool.fix!, /pveum acl modify \/pool\/pveflow --roles PVEflow --users lowpriv@pve/);
    assert.match(pool.fix!, /--tokens 'lowpriv@pve!automation'/);
    // Everything else about the cluster is fine: only privileges fail, and the bridges, which the token may not list.
    assert.deepEqual(
      failed(findings)
        .filter((f) => !f.check.startsWith('pve.privileges'))
        .map((f) => [f.check, f.fix]),
      ['pve1', 'pve2', 'pve3'].map((n) => [`pve.bridges ${n}`, 'the token needs SDN.Audit on /sdn/zones/localnetwork (docs/operations.md)']),
    );
  });

  test('the answer has PVE’s shape: privileges with their propagate flag, for one path or for every path', async () => {
    const one = await pve.call('GET', '/access/permissions', { path: '/storage/ceph' }, permissionsSchema);
    assert.deepEqual(Object.keys(one), ['/storage/ceph']);
    assert.deepEqual(Object.keys(one['/storage/ceph']!).sort(), ['Datastore.Audit']);
    const nothing = await pve.call('GET', '/access/permissions', { path: '/nodes/pve1' }, permissionsSchema);
    assert.deepEqual(nothing, { '/nodes/pve1': {} });
    // The default token: Sys.Audit on / does not propagate (so no node metrics, no VM outside the pool).
    const all = await rootPve.call('GET', '/access/permissions', { userid: TOKEN.id }, permissionsSchema);
    assert.deepEqual(all['/'], { 'Sys.Audit': 0 });
    assert.equal(all['/pool/pveflow']!['Pool.Allocate'], 1);
    assert.equal(all['/vms/9000']!['VM.Clone'], 1, 'the template, a pool member, is listed with what the pool grants');
    assert.deepEqual(all['/nodes'], { 'Sys.AccessNetwork': 1 }, 'an import’s download needs it on the nodes');
    assert.equal(all['/access'], undefined, 'paths without any privilege are left out');
  });

  test('asking about another user needs Sys.Audit on /access; a token may ask about itself', async () => {
    await assert.rejects(pve.call('GET', '/access/permissions', { userid: TOKEN.id }, permissionsSchema), (err: PveApiError) => err.status === 403 && /\/access, Sys\.Audit/.test(err.message));
    const self = await pve.call('GET', '/access/permissions', { userid: LOW.id, path: '/' }, permissionsSchema);
    assert.deepEqual(self, { '/': {} });
  });
});

describe('the catalogue, the networks and image imports (issue 31)', () => {
  /**
   * A cluster where pve2 lacks the second bridge, a template lives on local-lvm of pve1 (clones cannot leave it), one
   * VM of the catalogue is no template, and the storage that took imports no longer does for one token's view. Tokens:
   * one with the role on every path but without Sys.AccessNetwork, one with Sys.Audit + Sys.Modify on / instead.
   */
  const NO_NET = { id: 'nonet@pve!automation', secret: '2a0e2d3c-4b5a-4697-8877-665544332211' };
  const OLD_WAY = { id: 'oldway@pve!automation', secret: '3b0e2d3c-4b5a-4697-8877-665544332211' };
  let server: { url: string; close(): Promise<void> };
  let tls: { ca: string };
  const client = (t: { id: string; secret: string }) => new PveClient({ endpoint: new URL(server.url).origin, tokenId: t.id, tokenSecret: t.secret, ca: tls.ca, timeoutMs: 5_000 });
  const clients: PveClient[] = [];

  before(async () => {
    const seed = defaultClusterSeed({ tokenSecret: SECRET, rootTokenSecret: ROOT_SECRET });
    seed.nodes = seed.nodes.map((n) => ({ ...n, bridges: n.name === 'pve2' ? ['vmbr0'] : ['vmbr0', 'vmbr1'] }));
    const tpl = seed.vms[0]!;
    seed.vms.push(
      { vmid: 9100, node: 'pve1', pool: 'pveflow', config: { ...tpl.config, name: 'local-image', scsi0: 'local-lvm:base-9100-disk-0,size=4G', ide2: 'local-lvm:vm-9100-cloudinit,media=cdrom' } },
      { vmid: 9200, node: 'pve1', pool: 'pveflow', config: { ...tpl.config, name: 'not-a-template', template: 0, scsi0: 'ceph:vm-9200-disk-0,size=4G' } },
      // The same image's templates on pve2 and pve3, each on its node's local-lvm (an import onto local storage).
      ...(['pve2', 'pve3'] as const).map((node, i) => {
        const vmid = 9101 + i;
        return { vmid, node, pool: 'pveflow', config: { ...tpl.config, name: 'local-image', scsi0: `local-lvm:base-${vmid}-disk-0,size=4G`, ide2: `local-lvm:vm-${vmid}-cloudinit,media=cdrom` } };
      }),
    );
    const role = pveflowRolePrivileges(9);
    seed.roles = { ...seed.roles, NoNet: role.filter((p) => p !== 'Sys.AccessNetwork'), RootPair: ['Sys.Audit', 'Sys.Modify'] };
    for (const [t, roleName] of [
      [NO_NET, 'NoNet'],
      [OLD_WAY, 'NoNet'],
    ] as const) {
      const user = t.id.split('!')[0]!;
      seed.users.push({ userid: user });
      seed.tokens.push({ tokenid: t.id, secret: t.secret, privsep: true });
      for (const path of ['/pool/pveflow', '/storage/local', '/storage/ceph', '/storage/local-lvm', '/sdn/zones/localnetwork', '/nodes']) {
        seed.acls.push({ path, subject: user, role: roleName }, { path, subject: t.id, role: roleName });
      }
    }
    const old = OLD_WAY.id.split('!')[0]!;
    seed.acls.push({ path: '/', subject: old, role: 'RootPair', propagate: false }, { path: '/', subject: OLD_WAY.id, role: 'RootPair', propagate: false });
    mkdirSync(join(dir, 'catalogue'), { recursive: true });
    tls = await simulatorTls(join(dir, 'catalogue'));
    const sim = createPveSimulator({ seed, timing: simulatorTimings.fast, snippetsDir: (node) => join(dir, 'catalogue', node) });
    server = await sim.listen({ tls: tls as { key: string; cert: string; ca: string } });
  });
  after(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await server?.close();
  });
  const pveFor = (t: { id: string; secret: string }) => {
    const c = client(t);
    clients.push(c);
    return c;
  };

  test('every image’s template must exist, be a template, and reach every node placement may choose', async () => {
    const images = [
      { name: 'debian', template: 9000 },
      { name: 'by-name', template: 'debian-12-cloudinit' },
      { name: 'local-one', template: 9100 },
      { name: 'ghost', template: 9999 },
      { name: 'half-made', template: 9200 },
    ];
    const { findings } = await checkPve({ pve: pveFor(TOKEN), token: TOKEN, settings: { ...SETTINGS, images } });
    const get = (name: string) => byCheck(findings, `pve.image ${name}`)[0]!;
    assert.equal(get('debian').ok, true, get('debian').message);
    assert.equal(get('by-name').ok, true, get('by-name').message);
    assert.equal(get('local-one').ok, false);
    assert.equal(get('local-one').message, 'image local-one: template 9100 lives on pve1 with its disks on local-lvm, not shared with pve2, pve3: builds placed on pve2, pve3 would be refused ("VM uses local storage")');
    assert.match(get('local-one').fix!, /PVE_TARGET_STORAGE|PVE_NODE_SELECTOR to pve1/);
    assert.equal(get('ghost').ok, false);
    assert.match(get('ghost').message, /template 9999 does not exist, or the token cannot see it/);
    assert.equal(get('half-made').ok, false);
    assert.match(get('half-made').fix!, /qm template 9200/);
    // A full clone onto a shared storage reaches every node; placement on the template's node alone needs nothing shared.
    const target = await checkPve({ pve: pveFor(TOKEN), token: TOKEN, settings: { ...SETTINGS, images: [images[2]!], targetStorage: 'ceph' } });
    assert.equal(byCheck(target.findings, 'pve.image local-one')[0]!.ok, true);
    const pinned = await checkPve({ pve: pveFor(TOKEN), token: TOKEN, settings: { ...SETTINGS, images: [images[2]!], nodeSelector: ['pve1'] } });
    assert.equal(byCheck(pinned.findings, 'pve.image local-one')[0]!.ok, true);
  });

  test('an image with a template per node passes when every node placement may choose holds one, and names the nodes that hold none', async () => {
    const images = [
      { name: 'every-node', template: 9100, perNode: [9100, 9101, 9102] },
      { name: 'two-nodes', template: 9100, perNode: [9100, 9101] },
    ];
    const { findings } = await checkPve({ pve: pveFor(TOKEN), token: TOKEN, settings: { ...SETTINGS, images } });
    const get = (name: string) => byCheck(findings, `pve.image ${name}`)[0]!;
    assert.equal(get('every-node').ok, true, get('every-node').message);
    assert.match(get('every-node').message, /template 9100 on pve1, 9101 on pve2, 9102 on pve3 can be cloned onto pve1, pve2, pve3/);
    assert.equal(get('two-nodes').ok, false);
    assert.match(get('two-nodes').message, /template 9100 on pve1, 9101 on pve2 with its disks on local-lvm, not shared with pve3: builds placed on pve3 would be refused/);
    assert.match(get('two-nodes').fix!, /import the image again .* so that every node gets its template, or limit PVE_NODE_SELECTOR to pve1,pve2/);
  });

  test('every allowed network’s bridge must exist on every node placement may choose', async () => {
    const { findings } = await checkPve({ pve: pveFor(TOKEN), token: TOKEN, settings: { ...SETTINGS, networks: [{ bridge: 'vmbr0' }, { bridge: 'vmbr1' }] } });
    assert.deepEqual(
      findings.filter((f) => f.check.startsWith('pve.bridges')).map((f) => [f.check, f.ok]),
      [
        ['pve.bridges pve1', true],
        ['pve.bridges pve2', false],
        ['pve.bridges pve3', true],
      ],
    );
    const [pve2] = byCheck(findings, 'pve.bridges pve2');
    assert.equal(pve2!.message, 'bridge vmbr1 (PVE_BRIDGE / PVE_NETWORKS) does not exist on pve2: a VM placed there could not be attached');
    assert.match(pve2!.fix!, /create vmbr1 on pve2/);
    const elsewhere = await checkPve({ pve: pveFor(TOKEN), token: TOKEN, settings: { ...SETTINGS, networks: [{ bridge: 'vmbr1' }], nodeSelector: ['pve1', 'pve3'] } });
    assert.deepEqual(
      failed(elsewhere.findings).filter((f) => f.check.startsWith('pve.bridges')),
      [],
      'pve2 is not a placement node',
    );
  });

  test('the token may import: Sys.AccessNetwork on each node, or Sys.Audit with Sys.Modify on /', async () => {
    const noNet = await checkPve({ pve: pveFor(NO_NET), token: NO_NET, settings: SETTINGS });
    const nodes = failed(noNet.findings).filter((f) => f.check.startsWith('pve.privileges /nodes/'));
    assert.deepEqual(
      nodes.map((f) => f.message.split(' — ')[0]),
      ['pve1', 'pve2', 'pve3'].map((n) => `the token lacks on /nodes/${n}: Sys.AccessNetwork`),
    );
    assert.match(nodes[0]!.message, /let the node fetch an image’s URL/);
    assert.match(nodes[0]!.fix!, /pveum acl modify \/nodes\/pve1 --roles PVEflow/);
    const oldWay = await checkPve({ pve: pveFor(OLD_WAY), token: OLD_WAY, settings: SETTINGS });
    assert.deepEqual(
      failed(oldWay.findings).filter((f) => f.check.startsWith('pve.privileges')),
      [],
    );
  });

  test('a cluster where no storage takes import content says how to add it', async () => {
    const seed = defaultClusterSeed({ tokenSecret: SECRET });
    seed.storages = seed.storages.map((st) => (st.id === 'local' ? { ...st, content: st.content.filter((c) => c !== 'import') } : st));
    mkdirSync(join(dir, 'noimport'), { recursive: true });
    const own = await simulatorTls(join(dir, 'noimport'));
    const sim = createPveSimulator({ seed, timing: simulatorTimings.fast, snippetsDir: (node) => join(dir, 'noimport', node) });
    const listening = await sim.listen({ tls: own });
    const pve = new PveClient({ endpoint: new URL(listening.url).origin, tokenId: TOKEN.id, tokenSecret: SECRET, ca: own.ca, timeoutMs: 5_000 });
    try {
      const { findings } = await checkPve({ pve, token: TOKEN, settings: SETTINGS });
      const [f] = byCheck(findings, 'pve.import-storage');
      assert.equal(f!.ok, false);
      assert.equal(f!.message, 'no storage the token can see takes import content on pve1, pve2, pve3: images cannot be imported');
      assert.match(f!.fix!, /pvesm set local --content .*import/);
    } finally {
      await pve.close();
      await listening.close();
    }
  });
});

describe('effective privileges on PVE 8 (a stub: the simulator is PVE 9, which has no VM.Monitor)', () => {
  let grants: Record<string, string[]>;
  let server: Server;
  let pve: PveClient;

  before(async () => {
    const app = express();
    const data = (res: express.Response, value: unknown) => res.json({ data: value });
    app.get('/api2/json/version', (_req, res) => data(res, { version: '8.2.4', release: '8.2' }));
    app.get('/api2/json/cluster/resources', (_req, res) => data(res, [{ id: 'qemu/9000', type: 'qemu', vmid: 9000, node: 'pve1', template: 1 }]));
    app.get('/api2/json/nodes/pve1/qemu/9000/config', (_req, res) => data(res, { name: 'tpl', template: 1, agent: '1', scsi0: 'ceph:base-9000-disk-0,size=4G', ide2: 'ceph:vm-9000-cloudinit,media=cdrom' }));
    app.get('/api2/json/nodes', (_req, res) => data(res, [{ node: 'pve1', status: 'online' }]));
    app.get('/api2/json/nodes/pve1/storage', (_req, res) => data(res, [{ storage: 'local', content: 'iso,snippets,import', active: 1, enabled: 1 }]));
    app.get('/api2/json/nodes/pve1/sdn/zones/localnetwork/content', (_req, res) => data(res, [{ vnet: 'vmbr0', status: 'available' }]));
    app.get('/api2/json/access/permissions', (req, res) => {
      const path = String(req.query.path);
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
    return Object.fromEntries(['/pool/pveflow', '/vms/9000', '/storage/ceph', '/storage/local', '/sdn/zones/localnetwork/vmbr0', '/sdn/zones/localnetwork', '/nodes/pve1'].map((p) => [p, all]));
  };

  test('the guest agent needs VM.Monitor, and VM.GuestAgent.Audit does not stand in for it', async () => {
    grants = everything(9);
    const { findings } = await checkPve({ pve, token: TOKEN, settings: SETTINGS });
    assert.deepEqual(
      failed(findings).map((f) => f.message.split(' — ')[0]),
      ['the token lacks on /pool/pveflow: VM.Monitor'],
    );
    grants = everything(8);
    assert.deepEqual(failed((await checkPve({ pve, token: TOKEN, settings: SETTINGS })).findings), []);
  });
});

describe('token format', () => {
  test('a well-formed id and UUID secret pass', () => {
    assert.deepEqual(
      checkTokenFormat(TOKEN).map((f) => f.ok),
      [true],
    );
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

describe('what the doctor checks follows the settings', () => {
  test('with PVE_HA the token also needs Sys.Console on /; without, nothing on /', () => {
    const ctx = { pool: 'pveflow', templateVmid: 9000, bridge: 'vmbr0', storages: ['ceph'], snippetsStorage: 'local', pveMajor: 9 };
    assert.equal(
      requiredPrivileges(ctx).some((p) => p.path === '/'),
      false,
    );
    const root = requiredPrivileges({ ...ctx, with: ['PVE_HA'] }).find((p) => p.path === '/');
    assert.deepEqual(
      root?.requirements.map((r) => r.privilege),
      ['Sys.Console'],
    );
  });
});

describe("NetBird policies that open pveflow's VMs beyond their requests' own", () => {
  const group = (name: string) => ({ id: `id-${name}`, name });
  const policy = (name: string, rule: { sources: string[]; destinations: string[]; bidirectional?: boolean; enabled?: boolean; action?: 'accept' | 'drop' }, enabled = true): NetbirdPolicy => ({
    id: `p-${name}`,
    name,
    enabled,
    rules: [
      {
        name,
        enabled: rule.enabled ?? true,
        action: rule.action ?? 'accept',
        bidirectional: rule.bidirectional ?? false,
        protocol: 'all',
        sources: rule.sources.map(group),
        destinations: rule.destinations.map(group),
      },
    ],
  });
  const own = 'pveflow-VM-00001-consultants-to-device';
  const cases: Array<[string, NetbirdPolicy, string | undefined]> = [
    ["a new account's Default: All to All, both ways", policy('Default', { sources: ['All'], destinations: ['All'], bidirectional: true }), 'All may reach All, both ways'],
    ['admins to All, one way: the admins reach every VM', policy('admins', { sources: ['admins'], destinations: ['All'] }), 'admins may reach All'],
    ['All to a server, one way: every VM reaches out', policy('to-server', { sources: ['All'], destinations: ['servers'] }), 'All may reach servers'],
    ["a hand-made policy into a request's device group", policy('by-hand', { sources: ['support'], destinations: ['device-VM-00001'] }), 'support may reach device-VM-00001'],
    ['a device group as a source: the VM reaches out', policy('vm-out', { sources: ['device-VM-00001'], destinations: ['printers'] }), 'device-VM-00001 may reach printers'],
    [
      "pveflow's own request policy made bidirectional",
      policy(own, { sources: ['pveflow-consultant-a@x.example'], destinations: ['device-VM-00001'], bidirectional: true }),
      'pveflow-consultant-a@x.example may reach device-VM-00001, both ways',
    ],
    ["pveflow's own one-way request policy", policy(own, { sources: ['pveflow-consultant-a@x.example'], destinations: ['device-VM-00001'] }), undefined],
    ['Default disabled', policy('Default', { sources: ['All'], destinations: ['All'], bidirectional: true }, false), undefined],
    ['Default with its rule disabled', policy('Default', { sources: ['All'], destinations: ['All'], bidirectional: true, enabled: false }), undefined],
    ['a drop rule over All', policy('deny', { sources: ['All'], destinations: ['All'], action: 'drop' }), undefined],
    ['a policy between groups pveflow does not use', policy('office', { sources: ['laptops'], destinations: ['printers'], bidirectional: true }), undefined],
  ];
  for (const [what, p, grants] of cases) {
    test(`${what}: ${grants ? 'named' : 'fine'}`, () => {
      assert.deepEqual(policyExposures([p]), grants ? [{ policy: p.name, rule: p.rules[0]!.name, grants }] : []);
    });
  }
});

describe('docs/operations.md', () => {
  test('the role it tells operators to create holds exactly the privileges the doctor checks', () => {
    const doc = readFileSync(join(__dirname, '..', 'docs', 'operations.md'), 'utf8');
    const privs = /pveum role add PVEflow --privs "([^"]+)"/.exec(doc)?.[1]?.split(' ');
    assert.deepEqual(privs, pveflowRolePrivileges(9));
  });
});

describe('`pveflow doctor` with an API: the catalogue it keeps is checked too (issue 31)', () => {
  let api: Server;
  let apiUrl = '';
  const apiKey = 'pk_doctor-test-key';
  /** What GET /api/images answers: an imported image whose template is gone since, and the seeded one. */
  const listed = [
    { name: 'debian-12', template_vmid: 9000 },
    { name: 'imported-gone', template_vmid: 8990 },
  ];
  before(async () => {
    const app = express();
    app.get('/api/images', (req, res) => {
      if (req.headers.authorization !== `Bearer ${apiKey}`) return void res.status(401).json({ error: 'unauthorized', detail: 'no valid API key' });
      res.json({ synced_at: new Date().toISOString(), images: listed.map((i) => ({ ...i, node: 'pve1', min_cores: 1, min_memory_mib: 512, min_disk_gib: 4, default: false })) });
    });
    api = await new Promise((ok) => {
      const s = app.listen(0, '127.0.0.1', () => ok(s));
    });
    apiUrl = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise<void>((ok) => (api ? api.close(() => ok()) : ok()));
  });

  const doctor = async (env: Record<string, string>) => {
    const run = await pveflow(['doctor', '--json'], { ...world.env, ...env });
    return { ...run, findings: JSON.parse(run.stdout) as Finding[] };
  };

  test('an image the API lists whose template is missing fails, naming it; the others pass', { timeout: 180_000 }, async () => {
    const { findings, code } = await doctor({ PVEFLOW_API_URL: apiUrl, PVEFLOW_API_KEY: apiKey });
    assert.equal(code, 1, 'a failed check is a refusal');
    assert.deepEqual(
      byCheck(findings, 'api.images').map((f) => f.ok),
      [true],
    );
    const gone = byCheck(findings, 'pve.image imported-gone');
    assert.equal(gone.length, 1, JSON.stringify(findings.map((f) => f.check)));
    assert.equal(gone[0]!.ok, false);
    assert.match(gone[0]!.message, /8990/);
    assert.ok(
      byCheck(findings, 'pve.image debian-12').every((f) => f.ok),
      JSON.stringify(byCheck(findings, 'pve.image debian-12')),
    );
  });

  test('an API that refuses the key is a failed finding saying what was checked instead', { timeout: 180_000 }, async () => {
    const { findings } = await doctor({ PVEFLOW_API_URL: apiUrl, PVEFLOW_API_KEY: 'pk_wrong' });
    const [finding] = byCheck(findings, 'api.images');
    assert.equal(finding?.ok, false, JSON.stringify(finding));
    assert.match(finding!.message, /cannot read the image catalogue from http:\/\/127\.0\.0\.1:\d+: .*only the configured images/);
    assert.equal(byCheck(findings, 'pve.image imported-gone').length, 0);
  });

  test('without an API key the doctor checks the configuration alone', { timeout: 180_000 }, async () => {
    const { findings } = await doctor({ PVEFLOW_API_URL: apiUrl });
    assert.equal(byCheck(findings, 'api.images').length, 0);
    assert.equal(byCheck(findings, 'pve.image imported-gone').length, 0);
  });
});
