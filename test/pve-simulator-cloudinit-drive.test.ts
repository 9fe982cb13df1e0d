import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { cloudInitFiles, writeCloudInitIso } from '../src/simulators/pve/realGuests/cloudInitDrive';
import { realGuestPrerequisites } from '../src/simulators/pve';

/**
 * The cloud-init drive of real-guest mode, file by file, against proxmox-behaviour.md §4.13.1 (no QEMU needed):
 * snippets verbatim, generated network-config version 1, meta-data's instance id over user-data and network-config.
 */
const resolver = { nameservers: ['10.0.2.3'], searchDomains: [] };
const config = {
  name: 'vm-000042',
  net0: 'virtio=BC:24:11:AA:BB:01,bridge=vmbr0',
  ipconfig0: 'ip=dhcp',
  net1: 'virtio=BC:24:11:AA:BB:02,bridge=vmbr1',
  ipconfig1: 'ip=192.168.7.20/24,gw=192.168.7.1',
  net2: 'virtio=BC:24:11:AA:BB:03,bridge=vmbr2',
};

test('the user snippet is user-data byte for byte; network-config is generated per netN with an ipconfigN; vendor-data is empty', () => {
  const user = Buffer.concat([Buffer.from('#cloud-config\nruncmd:\n  - [ true ]\n'), Buffer.from([0xc3, 0xa9, 0x0a])]);
  const files = cloudInitFiles(config, { user }, resolver);
  assert.deepEqual(files['user-data'], user);
  assert.equal(
    files['network-config'].toString(),
    [
      'version: 1',
      'config:',
      '    - type: physical',
      '      name: eth0',
      "      mac_address: 'bc:24:11:aa:bb:01'",
      '      subnets:',
      '      - type: dhcp4',
      '    - type: physical',
      '      name: eth1',
      "      mac_address: 'bc:24:11:aa:bb:02'",
      '      subnets:',
      '      - type: static',
      "        address: '192.168.7.20'",
      "        netmask: '255.255.255.0'",
      "        gateway: '192.168.7.1'",
      '    - type: nameserver',
      '      address:',
      "      - '10.0.2.3'",
      '',
    ].join('\n'),
  );
  assert.equal(files['vendor-data'].length, 0);
});

test("meta-data's instance id is sha1(user-data . network-config): the same bytes keep it, changed bytes change it", () => {
  const user = Buffer.from('#cloud-config\nhostname: a\n');
  const files = cloudInitFiles(config, { user }, resolver);
  const expected = createHash('sha1')
    .update(Buffer.concat([files['user-data'], files['network-config']]))
    .digest('hex');
  assert.equal(files['meta-data'].toString(), `instance-id: ${expected}\n`);
  assert.deepEqual(cloudInitFiles(config, { user: Buffer.from(user) }, resolver)['meta-data'], files['meta-data']);
  assert.notDeepEqual(cloudInitFiles(config, { user: Buffer.from('#cloud-config\nhostname: b\n') }, resolver)['meta-data'], files['meta-data']);
  // A meta snippet wins over the generated one.
  assert.equal(cloudInitFiles(config, { user, meta: Buffer.from('instance-id: mine\n') }, resolver)['meta-data'].toString(), 'instance-id: mine\n');
});

test("a netN with an ipconfigN but no MAC dies as qemu-server does; without a user snippet PVE's own user-data is written", () => {
  assert.throws(() => cloudInitFiles({ net0: 'bridge=vmbr0', ipconfig0: 'ip=dhcp' }, {}, resolver), /^Error: network interface 'net0' has no mac address$/);
  const generated = cloudInitFiles({ ...config, ciuser: 'debian', sshkeys: encodeURIComponent('ssh-ed25519 AAAAC3Nza test\n') }, {}, resolver)['user-data'].toString();
  assert.match(generated, /^#cloud-config\nhostname: vm-000042\n/);
  assert.match(generated, /\nuser: debian\n/);
  assert.match(generated, /\nssh_authorized_keys:\n {2}- ssh-ed25519 AAAAC3Nza test\n/);
});

test('the drive is an ISO 9660 image labelled cidata holding the four files', { skip: process.env.CI ? false : realGuestPrerequisites() }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cidata-'));
  try {
    const user = Buffer.from('#cloud-config\nhostname: iso\n');
    await writeCloudInitIso(cloudInitFiles(config, { user }, resolver), join(dir, 'files'), join(dir, 'seed.iso'));
    const description = execFileSync('isoinfo', ['-d', '-i', join(dir, 'seed.iso')]).toString();
    assert.match(description, /^Volume id: cidata$/m);
    const names = execFileSync('isoinfo', ['-R', '-f', '-i', join(dir, 'seed.iso')])
      .toString()
      .trim()
      .split('\n')
      .sort();
    assert.deepEqual(names, ['/meta-data', '/network-config', '/user-data', '/vendor-data']);
    assert.deepEqual(execFileSync('isoinfo', ['-R', '-i', join(dir, 'seed.iso'), '-x', '/user-data']), user);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
