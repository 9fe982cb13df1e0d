import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { configKeyPrivilege } from '../src/domain/pveConfigPrivileges';
import { simulatorTimings } from '../src/embedded/simulatorTimings';
import { defaultClusterSeed } from '../src/simulators/pve';
import { assertConfigKeyAllowed } from '../src/simulators/pve/handlers/qemuConfig';
import { HARNESS_ROOT_SECRET, HARNESS_SECRET, startPveHarness, type PveHarness } from '../src/simulators/pve/harness';
import { ROLES } from '../src/simulators/pve/permissions';
import type { ApiRequest, SimContext } from '../src/simulators/pve/context';

/**
 * The simulator checks every VM config key against the privilege Proxmox VE checks for it (proxmox-behaviour.md
 * §4.9.1, qemu-server's `check_vm_modify_config_perm`). The table below is the reference's, written out here on its
 * own so that it judges the simulator's table rather than repeating it: for each key group, a token lacking the
 * group's privilege is refused with 403 naming it, and a token holding only that privilege is let through.
 */
const GROUPS: Array<{ group: string; privileges: string[]; any?: boolean; keys: Record<string, string> }> = [
  { group: 'CPU', privileges: ['VM.Config.CPU'], keys: { cores: '2', sockets: '1', cpuunits: '100', cpulimit: '1', numa: '0', cpu: 'host' } },
  { group: 'memory', privileges: ['VM.Config.Memory'], keys: { memory: '1024', balloon: '512', shares: '500' } },
  {
    group: 'hardware type',
    privileges: ['VM.Config.HWType'],
    keys: { smbios1: 'uuid=8c3f1e1a-0300-4a59-9d3e-000000000300,manufacturer=cHZlZmxvdw==,base64=1', vga: 'std', tablet: '0', acpi: '1', kvm: '1', machine: 'q35', scsihw: 'virtio-scsi-pci', hotplug: 'network,disk' },
  },
  { group: 'options', privileges: ['VM.Config.Options'], keys: { agent: '1', name: 'renamed', description: 'notes', onboot: '1', ostype: 'l26', protection: '0', tags: 'a;b' } },
  { group: 'power', privileges: ['VM.PowerMgmt'], keys: { freeze: '0' } },
  { group: 'disk options', privileges: ['VM.Config.Disk'], keys: { boot: 'order=scsi0', vmstatestorage: 'local-lvm' } },
  { group: 'network', privileges: ['VM.Config.Network'], keys: { net0: 'virtio=BC:24:11:03:00:01,bridge=vmbr0' } },
  {
    group: 'cloud-init',
    privileges: ['VM.Config.Cloudinit', 'VM.Config.Network'],
    any: true,
    keys: { ipconfig0: 'ip=dhcp', cicustom: 'user=local:snippets/x.yaml', ciuser: 'ops', nameserver: '10.0.0.53', searchdomain: 'lab.example' },
  },
  // Checked elsewhere in qemu-server, by value: a disk, a CD-ROM, a serial socket, a SPICE USB port.
  { group: 'disk', privileges: ['VM.Config.Disk'], keys: { scsi1: 'local-lvm:1', unused0: 'local-lvm:vm-300-disk-9' } },
  { group: 'CD-ROM', privileges: ['VM.Config.CDROM'], keys: { ide3: 'none,media=cdrom' } },
  { group: 'serial socket and SPICE USB', privileges: ['VM.Config.HWType'], keys: { serial0: 'socket', usb0: 'spice' } },
];
const ROOT_ONLY: Record<string, string> = { args: '-no-reboot', lock: 'backup', hookscript: 'local:snippets/hook.pl', affinity: '0-1' };
/** Real host devices: root@pam only, whatever privileges a token holds. */
const ROOT_ONLY_VALUES: Record<string, string> = { serial1: '/dev/ttyS0', usb1: 'host=1234:5678' };

const VMID = 300;
const USER = 'table@pve';
/** Enough to pass the config call's own check ("any VM.Config.*"); no key group above needs it alone. */
const ENTRY = 'VM.Config.CPU';
const ALL_VM = ROLES.PVEVMAdmin!;

const tokens = new Map<string, string>();
function tokenFor(name: string): string {
  const auth = tokens.get(name);
  if (!auth) throw new Error(`no token ${name}`);
  return auth;
}

let pve: PveHarness;

before(async () => {
  const seed = defaultClusterSeed({ tokenSecret: HARNESS_SECRET, rootTokenSecret: HARNESS_ROOT_SECRET });
  seed.vms.push({
    vmid: VMID,
    node: 'pve1',
    pool: 'pveflow',
    config: { name: 'table', cores: 1, memory: '512', scsi0: 'local-lvm:vm-300-disk-0,size=4G', net0: 'virtio=BC:24:11:03:00:00,bridge=vmbr0', scsihw: 'virtio-scsi-pci' },
  });
  seed.users.push({ userid: USER });
  seed.roles = { ...seed.roles };
  seed.acls.push(
    { path: '/pool/pveflow', subject: USER, role: 'PVEVMAdmin' },
    { path: '/sdn/zones/localnetwork', subject: USER, role: 'PVESDNUser' },
    { path: '/storage', subject: USER, role: 'PVEDatastoreUser' },
    { path: '/', subject: USER, role: 'SysModify', propagate: false },
  );
  seed.roles.SysModify = ['Sys.Modify'];
  const addToken = (name: string, privileges: readonly string[]) => {
    const tokenid = `${USER}!${name}`;
    const secret = `00000000-0000-4000-8000-${String(tokens.size).padStart(12, '0')}`;
    seed.tokens.push({ tokenid, secret, privsep: true });
    seed.roles![`Role_${name}`] = [...privileges];
    seed.acls.push(
      { path: '/pool/pveflow', subject: tokenid, role: `Role_${name}` },
      { path: '/sdn/zones/localnetwork', subject: tokenid, role: 'PVESDNUser' },
      { path: '/storage', subject: tokenid, role: 'PVEDatastoreUser' },
    );
    if (name === 'modify') seed.acls.push({ path: '/', subject: tokenid, role: 'SysModify', propagate: false });
    tokens.set(name, `PVEAPIToken=${tokenid}=${secret}`);
  };
  GROUPS.forEach(({ privileges, any }, i) => {
    addToken(
      `without${i}`,
      ALL_VM.filter((p) => !privileges.includes(p)),
    );
    if (any) for (const [j, p] of privileges.entries()) addToken(`only${i}_${j}`, [ENTRY, p]);
    else addToken(`only${i}_0`, [ENTRY, ...privileges]);
  });
  addToken('all', ALL_VM);
  addToken('modify', ALL_VM);
  pve = await startPveHarness({ seed, timing: simulatorTimings.fast });
});
after(async () => pve?.close());

async function put(auth: string, form: Record<string, string>) {
  return pve.call('PUT', `/nodes/pve1/qemu/${VMID}/config`, { form, auth });
}

describe('simulated Proxmox VE: config keys need the privilege §4.9.1 names', () => {
  for (const [i, { group, privileges, any, keys }] of GROUPS.entries()) {
    test(`${group} keys (${Object.keys(keys).join(', ')}) are refused without ${privileges.join(any ? ' or ' : ' and ')}, with 403 naming it`, async () => {
      for (const [key, value] of Object.entries(keys)) {
        const r = await put(tokenFor(`without${i}`), { [key]: value });
        assert.equal(r.status, 403, `${key}: ${r.status} ${r.raw}`);
        for (const p of privileges) assert.match(r.statusText, new RegExp(`/vms/${VMID}, .*${p.replace('.', '\\.')}`), key);
        // Deleting a key needs what setting it does.
        if (key !== 'net0' && !/^(scsi|ide|serial|usb|unused)\d+$/.test(key))
          assert.equal((await pve.call('PUT', `/nodes/pve1/qemu/${VMID}/config`, { form: { delete: key }, auth: tokenFor(`without${i}`) })).status, 403, `delete ${key}`);
      }
    });

    test(`${group} keys are accepted with ${any ? 'either of ' : 'only '}${privileges.join(any ? ', ' : ' and ')}`, async () => {
      const holders = any ? privileges.map((_, j) => `only${i}_${j}`) : [`only${i}_0`];
      for (const holder of holders) {
        for (const [key, value] of Object.entries(keys)) {
          const r = await put(tokenFor(holder), { [key]: value });
          assert.equal(r.status, 200, `${holder} ${key}: ${r.status} ${r.statusText} ${r.raw}`);
        }
      }
    });
  }

  test('root-only keys (args, lock, hookscript, affinity) are refused to every token, even root@pam’s own', async () => {
    for (const [key, value] of Object.entries(ROOT_ONLY)) {
      for (const as of [{ auth: tokenFor('all') }, { as: 'root' as const }]) {
        const r = await pve.call('PUT', `/nodes/pve1/qemu/${VMID}/config`, { form: { [key]: value }, ...as });
        assert.equal(r.status, 500, `${key}: ${r.status} ${r.raw}`);
        assert.equal(r.body?.message, `only root can set '${key}' config\n`, key);
      }
    }
    const config = (await pve.call('GET', `/nodes/pve1/qemu/${VMID}/config`, { as: 'root' })).body!.data as Record<string, unknown>;
    for (const key of Object.keys(ROOT_ONLY)) assert.equal(config[key], undefined, `${key} was not set`);
  });

  test('real host devices (a serial device, a host USB device) are root@pam’s alone', async () => {
    for (const [key, value] of Object.entries(ROOT_ONLY_VALUES)) {
      const r = await put(tokenFor('all'), { [key]: value });
      assert.equal(r.status, 500, `${key}: ${r.status} ${r.raw}`);
      assert.equal(r.body?.message, `only root can set '${key}' config\n`, key);
    }
  });

  test('startup needs VM.Config.Options on the VM and Sys.Modify on /', async () => {
    const refused = await put(tokenFor('all'), { startup: 'order=1' });
    assert.equal(refused.status, 403, refused.raw);
    assert.match(refused.statusText, /\/, Sys\.Modify/);
    const accepted = await put(tokenFor('modify'), { startup: 'order=1' });
    assert.equal(accepted.status, 200, accepted.raw);
  });

  test('vmstate (which the API schema does not let anyone send) needs both VM.Config.Disk and VM.PowerMgmt', () => {
    assert.deepEqual(configKeyPrivilege('vmstate'), { all: ['VM.Config.Disk', 'VM.PowerMgmt'] });
  });

  test('root@pam itself (a ticket, not a token) may set them', () => {
    const sim = { perms: { check: () => undefined } } as unknown as SimContext;
    const asRoot = { identity: { userid: 'root@pam', privsep: false } } as ApiRequest;
    const asRootToken = { identity: { userid: 'root@pam', tokenName: 'x', privsep: false } } as ApiRequest;
    for (const key of Object.keys(ROOT_ONLY)) {
      assert.doesNotThrow(() => assertConfigKeyAllowed(asRoot, sim, key, ROOT_ONLY[key], `/vms/${VMID}`, () => true));
      assert.throws(() => assertConfigKeyAllowed(asRootToken, sim, key, ROOT_ONLY[key], `/vms/${VMID}`, () => true), /only root can set/);
    }
  });

  test('creating a VM checks its keys the same way: smbios1 needs VM.Config.HWType', async () => {
    const hw = GROUPS.findIndex((g) => g.group === 'hardware type');
    const form = { vmid: '301', pool: 'pveflow', name: 'made', memory: '512', smbios1: 'uuid=8c3f1e1a-0301-4a59-9d3e-000000000301' };
    const refused = await pve.call('POST', '/nodes/pve1/qemu', { form, auth: tokenFor(`without${hw}`) });
    assert.equal(refused.status, 403, refused.raw);
    assert.match(refused.statusText, /VM\.Config\.HWType/);
    const args = await pve.call('POST', '/nodes/pve1/qemu', { form: { ...form, args: '-no-reboot' }, auth: tokenFor('all') });
    assert.equal(args.status, 500, args.raw);
    assert.equal(args.body?.message, "only root can set 'args' config\n");
    const made = await pve.call('POST', '/nodes/pve1/qemu', { form, auth: tokenFor('all') });
    assert.equal(made.status, 200, made.raw);
    assert.match(String(made.body?.data), /^UPID:pve1:.*:qmcreate:301:/);
  });
});
