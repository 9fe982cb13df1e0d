import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { realGuestPrerequisites } from '../src/simulators/pve';
import { guestImage, runnableOrSkip, sshRun as sshAs, startRealGuestWorld, type RealGuestVm, type RealGuestWorld } from './support/realGuest';

/**
 * The Proxmox simulator in real-guest mode (issue 26): a VM made the way pveflow makes one (linked clone of the
 * template, `cicustom` pointing at a snippet uploaded over SFTP, start) boots the project's Debian image under QEMU,
 * and what the guest did is read back from the guest itself: its agent, its files, its SSH server. Under software
 * emulation a boot takes a minute or more, so the waits are long but bounded, and each failure quotes the guest's
 * serial console.
 */
const NODE = 'pve1';
const TEMPLATE = 9000;
const VMID = 301;
const SECOND_VMID = 302;
const BOOT_WAIT_MS = 12 * 60_000;

const reasonNotRunnable = realGuestPrerequisites();
let dir = '';
let realWorld: RealGuestWorld | undefined;
let vm: RealGuestVm;
let keyFile = '';
let passwordHash = '';
let snippet = Buffer.alloc(0);
/** A service on the host that the guest reaches only through its `guestfwd` (as the tests will reach NetBird, apt). */
let hostService: Server | undefined;
const FORWARDED = { address: '10.0.2.100', port: 8080 };

before(async () => {
  if (reasonNotRunnable) return;
  dir = mkdtempSync(join(tmpdir(), 'pve-real-guest-'));
  const image = guestImage();

  hostService = createServer((_req, res) => res.end('hello from the host\n'));
  await new Promise<void>((done) => hostService!.listen(0, '127.0.0.1', done));
  const servicePort = (hostService.address() as AddressInfo).port;
  const guestForwards = [{ ...FORWARDED, command: `socat - TCP:127.0.0.1:${servicePort}` }];
  realWorld = await startRealGuestWorld(dir, image, guestForwards);
  vm = realWorld.vm({ node: NODE, vmid: VMID, bootWaitMs: BOOT_WAIT_MS });

  keyFile = join(dir, 'consultant');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'consultant@test', '-f', keyFile]);
  passwordHash = execFileSync('openssl', ['passwd', '-6', '-salt', 'pveflowrealguest', 'correct horse battery']).toString().trim();
  snippet = Buffer.from(
    [
      '#cloud-config',
      'hostname: real-guest-301',
      'ssh_pwauth: true',
      'users:',
      '  - name: consultant',
      '    shell: /bin/bash',
      '    lock_passwd: false',
      `    passwd: "${passwordHash}"`,
      '    ssh_authorized_keys:',
      `      - ${readFileSync(`${keyFile}.pub`, 'utf8').trim()}`,
      'runcmd:',
      "  - [ sh, -c, 'echo ran >> /var/lib/runcmd-count' ]",
      '',
    ].join('\n'),
  );
});

after(async () => {
  await realWorld?.stop();
  hostService?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('a VM made as pveflow makes it boots a real guest that does what its snippet says', { timeout: 40 * 60_000 }, async (t) => {
  if (!runnableOrSkip(t, reasonNotRunnable, 'real guests cannot run on this machine')) return;
  const { world: w, pve } = realWorld!;
  // The snippet travels as pveflow's does: SFTP to the node's snippets directory.
  await vm.cloneWithSnippet(TEMPLATE, 'real-guest-301', `real-guest-${VMID}.yaml`, snippet);
  // Disk growth before the first boot lands on the image the guest sees.
  await vm.task(await pve.resizeDisk(NODE, VMID, 'scsi0', '+1G'));
  const started = Date.now();
  let guest = await vm.start();
  assert.equal(w.pve.dump().vms.find((v) => v.vmid === VMID)?.guest?.pid, guest.pid);

  const ipv4 = await vm.bootedToAddress();
  t.diagnostic(`agent reported ${ipv4} after ${Math.round((Date.now() - started) / 1000)} s (${guest.accel})`);
  await vm.waitFor('cloud-init to finish (boot-finished)', async () => (await vm.readGuestFile('/var/lib/cloud/instance/boot-finished').catch(() => undefined)) !== undefined);
  t.diagnostic(`cloud-init done after ${Math.round((Date.now() - started) / 1000)} s`);

  // The drive qemu-server would write carries the uploaded snippet byte for byte, and the guest read exactly that.
  assert.deepEqual(readFileSync(join(guest.disk, '..', 'cloudinit', 'user-data')), snippet);
  assert.equal(await vm.readGuestFile('/var/lib/cloud/instance/user-data.txt'), snippet.toString('utf8'));
  const shadow = await vm.readGuestFile('/etc/shadow');
  assert.match(shadow, new RegExp(`^consultant:${escapeRegExp(passwordHash)}:`, 'm'), 'the password hash landed in /etc/shadow');
  assert.equal(await vm.readGuestFile('/var/lib/runcmd-count'), 'ran\n');
  const id = await vm.guestExec(['id', '-un', 'consultant']);
  assert.deepEqual(id, { exitcode: 0, out: 'consultant\n' }, 'agent/exec runs a command in the guest');
  assert.equal(Number((await vm.readGuestFile('/sys/block/vda/size')).trim()) * 512, 5 * 1024 ** 3, 'the resized disk (4G + 1G)');

  // The guest reaches what the world forwards to it, and nothing else of the host (restrict=on).
  const forwarded = await vm.guestExec(['curl', '-sS', '-m', '20', `http://${FORWARDED.address}:${FORWARDED.port}/`]);
  assert.deepEqual(forwarded, { exitcode: 0, out: 'hello from the host\n' }, 'the guestfwd reaches the host service');
  const hostPort = w.env.PVE_ENDPOINT.split(':').at(-1)!;
  assert.notEqual((await vm.guestExec(['curl', '-sS', '-m', '10', '-k', `https://10.0.2.2:${hostPort}/`])).exitcode, 0, 'the host itself is out of reach');

  const ssh = await sshAs(keyFile, 'consultant', guest, 'hostname');
  assert.equal(ssh.status, 0, `SSH through 127.0.0.1:${guest.ssh.port}: ${ssh.stderr}`);
  assert.equal(ssh.stdout.trim(), 'real-guest-301');

  // A reboot through the API: the same snippet, the same instance id, so cloud-init's per-instance modules stay done.
  const before = await vm.readGuestFile('/var/lib/cloud/instance/boot-finished');
  await vm.task(await pve.vmPower(NODE, VMID, 'reboot', { timeout: 600 }));
  guest = vm.attach();
  await vm.bootedToAddress();
  await vm.waitFor('cloud-init to finish the second boot', async () => (await vm.readGuestFile('/var/lib/cloud/instance/boot-finished').catch(() => before)) !== before);
  assert.equal(await vm.readGuestFile('/var/lib/runcmd-count'), 'ran\n', 'runcmd ran once, not again on the reboot');

  // A guest that powers itself off reads stopped.
  // Not waited for: the agent goes down with the guest.
  await vm.api('POST', `/nodes/${NODE}/qemu/${VMID}/agent/exec`, { command: ['systemctl', 'poweroff'] });
  await vm.waitFor('the VM to read stopped after the guest powered off', async () => (await pve.vmStatus(NODE, VMID)).status === 'stopped');
  assert.equal(alive(guest.pid), false);

  await vm.task(await pve.destroyVm(NODE, VMID, { purge: 1 }));
  assert.equal(existsSync(join(guest.disk, '..')), false, 'the disk and the VM folder are gone');
  assert.equal(w.pve.realGuest(VMID), undefined);
});

test('stopping the world ends every QEMU it started', { timeout: 10 * 60_000 }, async (t) => {
  if (!runnableOrSkip(t, reasonNotRunnable, 'real guests cannot run on this machine')) return;
  const { world: w, pve } = realWorld!;
  await vm.task(await pve.cloneVm(NODE, TEMPLATE, { newid: SECOND_VMID, name: 'real-guest-302', pool: 'pveflow' }));
  await vm.task(await pve.vmPower(NODE, SECOND_VMID, 'start'));
  const pid = w.pve.realGuest(SECOND_VMID)!.pid;
  assert.equal(alive(pid), true);
  await realWorld!.stop();
  assert.equal(alive(pid), false, `QEMU ${pid} outlived the world`);
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
