import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { renderUserData } from '../src/activities/snippets/cloudInit';
import { mergeUserData } from '../src/activities/snippets/userDataMerge';
import type { CloudInitChoices } from '../src/domain/cloudInitChoices';

/** The merge of a request's choices into pveflow's user-data: pveflow's keys win, the request's add. */
describe('mergeUserData', () => {
  const own = () => ({
    hostname: 'kali-vm-7k2q9',
    users: ['default', { name: 'arrow', passwd: '$6$x$own' }],
    chpasswd: { expire: false, users: [{ name: 'root', password: '$6$x$root', type: 'hash' }] },
    package_update: true,
    packages: ['qemu-guest-agent', 'curl', 'ca-certificates'],
    runcmd: [
      ['systemctl', 'enable', '--now', 'qemu-guest-agent'],
      ['netbird', 'up'],
    ],
  });

  test('no choices: pveflow user-data unchanged', () => {
    assert.deepEqual(mergeUserData(own(), undefined), own());
    assert.deepEqual(mergeUserData(own(), {}), own());
  });

  test("packages: pveflow's first, the request's after, none twice", () => {
    const merged = mergeUserData(own(), { packages: ['nginx', 'curl', 'htop=3.2.2-2'] });
    assert.deepEqual(merged.packages, ['qemu-guest-agent', 'curl', 'ca-certificates', 'nginx', 'htop=3.2.2-2']);
  });

  test("runcmd: pveflow's commands run before the request's, in the request's order", () => {
    const merged = mergeUserData(own(), { runcmd: ['echo one', ['systemctl', 'stop', 'qemu-guest-agent']] });
    assert.deepEqual(merged.runcmd, [['systemctl', 'enable', '--now', 'qemu-guest-agent'], ['netbird', 'up'], 'echo one', ['systemctl', 'stop', 'qemu-guest-agent']]);
  });

  test("a fragment's keys are added, but never over pveflow's: users, chpasswd, hostname and the package update keep pveflow's values", () => {
    // As if the intake had let them through: the merge is the guarantee, not only the intake.
    const fragment = {
      timezone: 'Europe/Paris',
      users: [{ name: 'mallory', sudo: 'ALL=(ALL) NOPASSWD:ALL' }],
      chpasswd: { users: [{ name: 'root', password: 'x', type: 'text' }] },
      hostname: 'evil',
      package_update: false,
      power_state: { mode: 'poweroff' },
      merge_how: 'dict(replace)+list(append)',
      swap: { filename: '/etc/shadow', size: 'auto' },
      mounts: [['tmpfs', '/etc/ssh', 'tmpfs']],
      bootcmd: ['rm -f /usr/local/bin/netbird'],
    } as unknown as CloudInitChoices['cloud_config'];
    const merged = mergeUserData(own(), { cloud_config: fragment });
    assert.equal(merged.timezone, 'Europe/Paris');
    for (const key of ['users', 'chpasswd', 'hostname', 'package_update'] as const) assert.deepEqual(merged[key], own()[key], key);
    assert.equal('power_state' in merged, false);
    assert.equal('merge_how' in merged, false);
    // Only the allowlist's keys pass, whatever got past the intake.
    for (const key of ['swap', 'mounts', 'bootcmd']) assert.equal(key in merged, false, key);
  });

  test("write_files: the request's files, none under a protected path", () => {
    const merged = mergeUserData(own(), {
      write_files: [
        { path: '/etc/motd', content: 'hello' },
        { path: '/etc/sudoers.d/90-me', content: 'me ALL=(ALL) NOPASSWD:ALL' },
        { path: '/etc/netbird/config.json', content: '{}' },
        { path: '/usr/local/bin/netbird', content: '#!/bin/sh' },
        { path: '/etc/hosts', content: '' },
        { path: '/home/arrow/.ssh/authorized_keys', content: '' },
      ],
    });
    assert.deepEqual(merged.write_files, [{ path: '/etc/motd', content: 'hello' }]);
    assert.equal('write_files' in mergeUserData(own(), { write_files: [{ path: '/etc/shadow', content: '' }] }), false, 'no empty list');
  });

  test("rendered: the YAML carries the merged document, and pveflow's logins and enrolment are intact", () => {
    const text = renderUserData({
      hostname: 'kali-vm-7k2q9',
      sshKeys: [],
      netbird: { managementUrl: 'https://netbird.example.test', setupKey: 'A'.repeat(36) },
      passwordHashes: { user: 'arrow', userHash: '$6$x$user', rootHash: '$6$x$root' },
      choices: { packages: ['nginx'], runcmd: ['echo done'], cloud_config: { timezone: 'UTC' } },
    });
    assert.match(text, /^#cloud-config\n/);
    const doc = parse(text) as Record<string, any>;
    assert.equal(doc.timezone, 'UTC');
    assert.deepEqual(doc.packages, ['qemu-guest-agent', 'curl', 'ca-certificates', 'nginx']);
    assert.deepEqual(doc.runcmd.at(-1), 'echo done');
    assert.ok(doc.runcmd.some((c: unknown) => Array.isArray(c) && c[0] === 'netbird' && c.includes('A'.repeat(36))));
    assert.equal(doc.users[1].name, 'arrow');
    assert.equal(doc.chpasswd.users[0].password, '$6$x$root');
  });
});
