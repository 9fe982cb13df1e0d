import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bootDisk, net0For, parsePropertyString, smbios1For } from '../src/activities/proxmox/vmSettings';

const b64 = (s: string) => Buffer.from(s).toString('base64');

test("smbios1 keeps the clone UUID and carries the seeds' metadata base64-encoded", () => {
  const out = smbios1For('uuid=6b1c2d3e-0000-4000-8000-000000000001,manufacturer=old', { vmName: 'kali-vm-7k2q9', templateVmid: 9000, serial: 'VM-7K2Q9', org: 'Acme Corp' });
  const pairs = Object.fromEntries(parsePropertyString(out));
  assert.equal(pairs.uuid, '6b1c2d3e-0000-4000-8000-000000000001');
  assert.equal(pairs.manufacturer, b64('pveflow'));
  assert.equal(pairs.product, b64('kali-vm-7k2q9'));
  assert.equal(pairs.version, b64('9000'));
  assert.equal(pairs.serial, b64('VM-7K2Q9'));
  assert.equal(pairs.family, b64('Acme Corp'));
  assert.equal(pairs.base64, '1');
  for (const k of ['manufacturer', 'product', 'version', 'serial', 'family']) assert.match(pairs[k]!, /^[A-Za-z0-9+/]+={0,2}$/, `${k} is what PVE accepts`);
});

test('net0 moves the NIC to the bridge and VLAN and keeps its model, MAC and other settings', () => {
  assert.equal(net0For('virtio=BC:24:11:2A:3B:4C,bridge=vmbr0,firewall=1', 'vmbr1', 42), 'virtio=BC:24:11:2A:3B:4C,firewall=1,bridge=vmbr1,tag=42');
  assert.equal(net0For('virtio=BC:24:11:2A:3B:4C,bridge=vmbr0,tag=7', 'vmbr0', undefined), 'virtio=BC:24:11:2A:3B:4C,bridge=vmbr0');
  assert.equal(net0For(undefined, 'vmbr0', undefined), 'virtio,bridge=vmbr0');
});

test('the boot disk is the first disk in the boot order, CD-ROMs and cloud-init drives skipped, size in GiB', () => {
  assert.deepEqual(bootDisk({ boot: 'order=ide2;scsi0;net0', ide2: 'ceph:vm-1-cloudinit,media=cdrom', scsi0: 'ceph:vm-1-disk-0,size=4G' }), { key: 'scsi0', sizeGiB: 4 });
  assert.deepEqual(bootDisk({ virtio0: 'local-lvm:vm-1-disk-0,size=512M' }), { key: 'virtio0', sizeGiB: 0.5 });
  assert.equal(bootDisk({ ide2: 'local:iso/x.iso,media=cdrom' }), undefined);
});
