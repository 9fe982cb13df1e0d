import assert from 'node:assert/strict';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Agent, fetch } from 'undici';
import { PveClient } from '../src/clients/pve';
import { SftpClient } from '../src/clients/sftp';
import { simulatorTimings } from '../src/embedded/simulatorTimings';
import { realGuestPrerequisites, type RealGuestInfo } from '../src/simulators/pve';
import { SNIPPETS_DIR, startSimulatedWorld, type SimulatedWorld } from '../src/simulators/world';

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
let world: SimulatedWorld | undefined;
let pve: PveClient;
let agent: Agent;
let keyFile = '';
let passwordHash = '';
let snippet = Buffer.alloc(0);
let guest: RealGuestInfo | undefined;
/** A service on the host that the guest reaches only through its `guestfwd` (as the tests will reach NetBird, apt). */
let hostService: Server | undefined;
const FORWARDED = { address: '10.0.2.100', port: 8080 };

before(async () => {
  if (reasonNotRunnable) return;
  dir = mkdtempSync(join(tmpdir(), 'pve-real-guest-'));
  const build = spawnSync('bash', ['scripts/build-guest-image.sh'], { encoding: 'utf8', timeout: 20 * 60_000 });
  if (build.status !== 0) throw new Error(`scripts/build-guest-image.sh failed (${build.status}): ${build.stderr.slice(-3000)}`);
  const image = build.stdout.trim().split('\n').at(-1)!;
  process.stderr.write(`guest image ${image}: ${build.stderr.trim().split('\n').at(-1)}\n`);

  hostService = createServer((_req, res) => res.end('hello from the host\n'));
  await new Promise<void>((done) => hostService!.listen(0, '127.0.0.1', done));
  const servicePort = (hostService.address() as AddressInfo).port;
  const guestForwards = [{ ...FORWARDED, command: `socat - TCP:127.0.0.1:${servicePort}` }];
  world = await startSimulatedWorld({ dir: join(dir, 'world'), timing: simulatorTimings.fast, realGuests: { image, guestForwards } });
  const ca = readFileSync(world.env.PVE_CA_FILE, 'utf8');
  pve = new PveClient({ endpoint: world.env.PVE_ENDPOINT, tokenId: world.env.PVE_TOKEN_ID, tokenSecret: world.env.PVE_TOKEN_SECRET, ca, timeoutMs: 60_000 });
  agent = new Agent({ connect: { ca } });

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
  await world?.stop();
  hostService?.close();
  await pve?.close();
  await agent?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('a VM made as pveflow makes it boots a real guest that does what its snippet says', { timeout: 40 * 60_000 }, async (t) => {
  if (reasonNotRunnable) {
    // Never silently: in CI this machine must run the test; elsewhere the skip says why.
    if (process.env.CI) assert.fail(`real guests cannot run on this machine: ${reasonNotRunnable}`);
    t.skip(`real guests cannot run on this machine: ${reasonNotRunnable}`);
    return;
  }
  const w = world!;
  await task(await pve.cloneVm(NODE, TEMPLATE, { newid: VMID, name: 'real-guest-301', pool: 'pveflow' }));
  // The snippet travels as pveflow's does: SFTP to the node's snippets directory.
  const [host, port] = w.env.SSH_NODES.split(',')
    .find((n) => n.startsWith(`${NODE}=`))!
    .slice(NODE.length + 1)
    .split(':');
  const fingerprint = w.env.SSH_HOST_FINGERPRINTS.split(',')
    .find((n) => n.startsWith(`${NODE}=`))!
    .slice(NODE.length + 1);
  const sftp = new SftpClient({ host: host!, port: Number(port), username: w.env.SSH_USER, privateKey: readFileSync(w.env.SSH_PRIVATE_KEY_FILE, 'utf8'), hostKeyFingerprint: fingerprint });
  await sftp.upload(`${SNIPPETS_DIR}/real-guest-${VMID}.yaml`, snippet);
  await sftp.close();
  await task(await pve.updateVmConfig(NODE, VMID, { cicustom: `user=local:snippets/real-guest-${VMID}.yaml`, ipconfig0: 'ip=dhcp' }));
  // Disk growth before the first boot lands on the image the guest sees.
  await task(await pve.resizeDisk(NODE, VMID, 'scsi0', '+1G'));
  const started = Date.now();
  await task(await pve.vmPower(NODE, VMID, 'start'));
  guest = w.pve.realGuest(VMID);
  assert.ok(guest, 'the started VM runs a real guest');
  assert.equal(w.pve.dump().vms.find((v) => v.vmid === VMID)?.guest?.pid, guest.pid);

  const ipv4 = await bootedToAddress();
  t.diagnostic(`agent reported ${ipv4} after ${Math.round((Date.now() - started) / 1000)} s (${guest.accel})`);
  await cloudInitDone();
  t.diagnostic(`cloud-init done after ${Math.round((Date.now() - started) / 1000)} s`);

  // The drive qemu-server would write carries the uploaded snippet byte for byte, and the guest read exactly that.
  assert.deepEqual(readFileSync(join(guest.disk, '..', 'cloudinit', 'user-data')), snippet);
  assert.equal(await readGuestFile('/var/lib/cloud/instance/user-data.txt'), snippet.toString('utf8'));
  const shadow = await readGuestFile('/etc/shadow');
  assert.match(shadow, new RegExp(`^consultant:${escapeRegExp(passwordHash)}:`, 'm'), 'the password hash landed in /etc/shadow');
  assert.equal(await readGuestFile('/var/lib/runcmd-count'), 'ran\n');
  const id = await guestExec(['id', '-un', 'consultant']);
  assert.deepEqual(id, { exitcode: 0, out: 'consultant\n' }, 'agent/exec runs a command in the guest');
  assert.equal(Number((await readGuestFile('/sys/block/vda/size')).trim()) * 512, 5 * 1024 ** 3, 'the resized disk (4G + 1G)');

  // The guest reaches what the world forwards to it, and nothing else of the host (restrict=on).
  const forwarded = await guestExec(['curl', '-sS', '-m', '20', `http://${FORWARDED.address}:${FORWARDED.port}/`]);
  assert.deepEqual(forwarded, { exitcode: 0, out: 'hello from the host\n' }, 'the guestfwd reaches the host service');
  const hostPort = w.env.PVE_ENDPOINT.split(':').at(-1)!;
  assert.notEqual((await guestExec(['curl', '-sS', '-m', '10', '-k', `https://10.0.2.2:${hostPort}/`])).exitcode, 0, 'the host itself is out of reach');

  const ssh = await sshRun(guest, 'hostname');
  assert.equal(ssh.status, 0, `SSH through 127.0.0.1:${guest.ssh.port}: ${ssh.stderr}`);
  assert.equal(ssh.stdout.trim(), 'real-guest-301');

  // A reboot through the API: the same snippet, the same instance id, so cloud-init's per-instance modules stay done.
  const before = await readGuestFile('/var/lib/cloud/instance/boot-finished');
  await task(await pve.vmPower(NODE, VMID, 'reboot', { timeout: 600 }));
  guest = w.pve.realGuest(VMID)!;
  await bootedToAddress();
  await waitFor('cloud-init to finish the second boot', async () => (await readGuestFile('/var/lib/cloud/instance/boot-finished').catch(() => before)) !== before);
  assert.equal(await readGuestFile('/var/lib/runcmd-count'), 'ran\n', 'runcmd ran once, not again on the reboot');

  // A guest that powers itself off reads stopped.
  // Not waited for: the agent goes down with the guest.
  await api('POST', `/nodes/${NODE}/qemu/${VMID}/agent/exec`, { command: ['systemctl', 'poweroff'] });
  await waitFor('the VM to read stopped after the guest powered off', async () => (await pve.vmStatus(NODE, VMID)).status === 'stopped');
  assert.equal(alive(guest.pid), false);

  await task(await pve.destroyVm(NODE, VMID, { purge: 1 }));
  assert.equal(existsSync(join(guest.disk, '..')), false, 'the disk and the VM folder are gone');
  assert.equal(w.pve.realGuest(VMID), undefined);
});

test('stopping the world ends every QEMU it started', { timeout: 10 * 60_000 }, async (t) => {
  if (reasonNotRunnable) {
    if (process.env.CI) assert.fail(`real guests cannot run on this machine: ${reasonNotRunnable}`);
    t.skip(`real guests cannot run on this machine: ${reasonNotRunnable}`);
    return;
  }
  await task(await pve.cloneVm(NODE, TEMPLATE, { newid: SECOND_VMID, name: 'real-guest-302', pool: 'pveflow' }));
  await task(await pve.vmPower(NODE, SECOND_VMID, 'start'));
  const pid = world!.pve.realGuest(SECOND_VMID)!.pid;
  assert.equal(alive(pid), true);
  await world!.stop();
  world = undefined;
  assert.equal(alive(pid), false, `QEMU ${pid} outlived the world`);
});

async function task(upid: string | null): Promise<void> {
  if (!upid) return;
  await waitFor(`task ${upid}`, async () => (await pve.taskStatus(upid)).status === 'stopped', 15 * 60_000, 500);
  const status = await pve.taskStatus(upid);
  if (status.exitstatus !== 'OK') assert.fail(`task ${upid} ended ${status.exitstatus}: ${(await pve.taskLogTail(upid)).join('\n')}`);
}

async function bootedToAddress(): Promise<string> {
  let address = '';
  await waitFor('the guest agent to report an IPv4 address', async () => {
    const interfaces = await pve.guestNetworkInterfaces(NODE, VMID).catch(() => undefined);
    const eth0 = interfaces?.result.find((i) => i.name === 'eth0');
    address = eth0?.['ip-addresses']?.find((a) => a['ip-address-type'] === 'ipv4')?.['ip-address'] ?? '';
    return address !== '';
  });
  return address;
}

async function cloudInitDone(): Promise<void> {
  await waitFor('cloud-init to finish (boot-finished)', async () => (await readGuestFile('/var/lib/cloud/instance/boot-finished').catch(() => undefined)) !== undefined);
}

/** `GET .../agent/file-read` (raw: pveflow's client has no call for it). */
async function readGuestFile(file: string): Promise<string> {
  const reply = await api('GET', `/nodes/${NODE}/qemu/${VMID}/agent/file-read?file=${encodeURIComponent(file)}`);
  return (reply as { content: string }).content;
}

/** `POST .../agent/exec`, then `exec-status` until it exited. */
async function guestExec(command: string[]): Promise<{ exitcode: number; out: string }> {
  const { pid } = (await api('POST', `/nodes/${NODE}/qemu/${VMID}/agent/exec`, { command })) as { pid: number };
  let status: { exited: number | boolean; exitcode?: number; 'out-data'?: string } = { exited: 0 };
  await waitFor(`'${command.join(' ')}' in the guest`, async () => {
    status = (await api('GET', `/nodes/${NODE}/qemu/${VMID}/agent/exec-status?pid=${pid}`)) as typeof status;
    return Boolean(status.exited);
  });
  return { exitcode: status.exitcode ?? -1, out: status['out-data'] ?? '' };
}

async function api(method: 'GET' | 'POST', path: string, json?: unknown): Promise<unknown> {
  const w = world!;
  const res = await fetch(`${w.env.PVE_ENDPOINT}/api2/json${path}`, {
    method,
    dispatcher: agent,
    headers: { authorization: `PVEAPIToken=${w.env.PVE_TOKEN_ID}=${w.env.PVE_TOKEN_SECRET}`, ...(json ? { 'content-type': 'application/json' } : {}) },
    body: json ? JSON.stringify(json) : undefined,
    signal: AbortSignal.timeout(60_000),
  });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${res.statusText}`);
  return ((await res.json()) as { data: unknown }).data;
}

/** The system's ssh client with the test's key (asynchronous: the simulator serves from this same process). */
function sshRun(info: RealGuestInfo, command: string): Promise<{ status: number; stdout: string; stderr: string }> {
  const args = ['-i', keyFile, '-p', String(info.ssh.port), '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=30'];
  return new Promise((done) => {
    execFile('ssh', [...args, `consultant@${info.ssh.host}`, command], { encoding: 'utf8', timeout: 120_000 }, (err, stdout, stderr) => {
      done({ status: err ? (typeof err.code === 'number' ? err.code : 255) : 0, stdout, stderr });
    });
  });
}

/** Polls `check` until true; past the deadline it fails quoting the end of the guest's serial console. */
async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = BOOT_WAIT_MS, everyMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) {
      const log = guest && existsSync(guest.serialLog) ? readFileSync(guest.serialLog, 'utf8').split('\n').slice(-40).join('\n') : '(no serial console log)';
      assert.fail(`waited ${Math.round(timeoutMs / 1000)} s for ${what}; the guest's serial console ends:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

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
