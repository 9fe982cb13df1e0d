import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../../net/freePort';
import type { VmState } from '../cluster';
import type { CloudInitSnippets } from '../guestAgent';
import { cloudInitFiles, writeCloudInitIso } from './cloudInitDrive';
import { qgaCall, qmpCall } from './qemuWire';

const run = promisify(execFile);

/**
 * Real guests (issue 26): with this mode on, a VM's start boots the project's Debian image (scripts/build-guest-image.sh)
 * under QEMU on a linked clone of it, with the cloud-init drive qemu-server would write; status, shutdown, reboot,
 * stop, reset, pause, disk growth and destroy act on that process, and the guest agent endpoints are answered by the
 * guest's own qemu-ga. Snapshots, migration and HA stay modelled (see the README beside this folder).
 */
export interface GuestForward {
  /** The address inside the guest's user-mode network (10.0.2.0/24, e.g. 10.0.2.100). */
  address: string;
  port: number;
  /** A host command whose stdin/stdout is each connection (e.g. `socat - TCP:127.0.0.1:8080`). */
  command: string;
}

export interface RealGuestOptions {
  /** The directory scripts/build-guest-image.sh printed: manifest.json, disk.qcow2, vmlinuz, initrd.img. */
  image: string;
  /** Where each VM's disk, cloud-init drive and serial console log are kept (`vm-<vmid>/`). */
  dir: string;
  /** Guest memory above this is not given (default 1024 MiB): a model deviation that keeps a box able to run a few. */
  memoryCapMiB?: number;
  /** Services the guest reaches at fixed addresses of its user-mode network (QEMU `guestfwd`). */
  guestForwards?: GuestForward[];
  /** `auto` (default) uses KVM only when a probe shows it boots a kernel; else software emulation (TCG). */
  accel?: 'auto' | 'kvm' | 'tcg';
}

/** What a test or a person needs to reach a running real guest. */
export interface RealGuestInfo {
  vmid: number;
  pid: number;
  /** `127.0.0.1:<port>` forwarded to the guest's port 22. */
  ssh: { host: string; port: number };
  serialLog: string;
  disk: string;
  accel: 'kvm' | 'tcg';
}

interface ImageManifest {
  disk: string;
  kernel: string;
  initrd: string;
  kernelCommandLine: string;
}

interface RunningGuest {
  child: ChildProcess;
  info: RealGuestInfo;
  qmp: string;
  qga: string;
  exited: Promise<void>;
  /** The stderr QEMU wrote (why a start failed). */
  stderr: () => string;
}

/** The guest agent is not answering (PVE: `QEMU guest agent is not running`) or a command timed out. */
export class AgentUnavailable extends Error {}

export class RealGuests {
  readonly #opts: Required<Omit<RealGuestOptions, 'guestForwards'>> & { guestForwards: GuestForward[] };
  readonly #manifest: ImageManifest;
  readonly #guests = new Map<number, RunningGuest>();
  /** Sockets need short paths (108 bytes): they live in a directory of their own under the system's tmp. */
  readonly #sockets = mkdtempSync(join(tmpdir(), 'pveflow-qemu-'));
  #accel: Promise<'kvm' | 'tcg'> | undefined;
  readonly #killOnExit = () => {
    for (const g of this.#guests.values()) g.child.kill('SIGKILL');
  };

  /** `onExit` is told when a QEMU process ends by itself (the guest powered off, or QEMU died). */
  constructor(
    opts: RealGuestOptions,
    private readonly onExit: (vmid: number, pid: number) => void,
  ) {
    this.#opts = { memoryCapMiB: 1024, accel: 'auto', guestForwards: [], ...opts, image: resolve(opts.image), dir: resolve(opts.dir) };
    const manifestFile = join(this.#opts.image, 'manifest.json');
    if (!existsSync(manifestFile)) throw new Error(`real guests: ${manifestFile} is missing (build the image with scripts/build-guest-image.sh)`);
    this.#manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as ImageManifest;
    mkdirSync(this.#opts.dir, { recursive: true });
    // A process that ends without stopping the world must not leave guests behind (QEMU also gets a parent-death signal).
    process.once('exit', this.#killOnExit);
  }

  running(vmid: number): boolean {
    return this.#guests.has(vmid);
  }

  info(vmid: number): RealGuestInfo | undefined {
    return this.#guests.get(vmid)?.info;
  }

  vmDir(vmid: number): string {
    return join(this.#opts.dir, `vm-${vmid}`);
  }

  /**
   * Boots `vm`: its disk (a linked clone of the image, made at the first start, at least `diskBytes` big), the
   * cloud-init drive regenerated from its config and snippets, then QEMU; resolves once QEMU's monitor answers.
   */
  async start(vm: VmState, snippets: CloudInitSnippets, diskBytes: number, templateVmid?: number): Promise<RealGuestInfo> {
    if (this.#guests.has(vm.vmid)) throw new Error(`VM ${vm.vmid} already running`);
    const dir = this.vmDir(vm.vmid);
    mkdirSync(dir, { recursive: true });
    const disk = join(dir, 'disk.qcow2');
    if (!existsSync(disk)) {
      // A linked clone of a template that has a disk of its own (one made from an imported image) stands on that
      // disk; every other VM on the project's image.
      const templateDisk = templateVmid !== undefined ? join(this.vmDir(templateVmid), 'disk.qcow2') : undefined;
      const base = templateDisk && existsSync(templateDisk) ? templateDisk : join(this.#opts.image, this.#manifest.disk);
      await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', disk]);
    }
    await this.#growTo(disk, diskBytes);
    const files = cloudInitFiles(vm.config, snippets, { nameservers: ['10.0.2.3'], searchDomains: [] });
    const iso = join(dir, 'cloudinit.iso');
    await writeCloudInitIso(files, join(dir, 'cloudinit'), iso);

    const accel = await this.accelerator();
    const sshPort = await freePort();
    const qmp = join(this.#sockets, `${vm.vmid}.qmp`);
    const qga = join(this.#sockets, `${vm.vmid}.qga`);
    rmSync(qmp, { force: true });
    rmSync(qga, { force: true });
    const serialLog = join(dir, 'serial.log');
    const args = [
      ...['-name', `vm${vm.vmid}`, '-machine', 'pc', '-nodefaults', '-display', 'none'],
      ...(accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,tb-size=256', '-cpu', 'max']),
      ...['-smp', String(vcpus(vm)), '-m', String(Math.min(memoryMiB(vm), this.#opts.memoryCapMiB))],
      ...['-kernel', join(this.#opts.image, this.#manifest.kernel), '-initrd', join(this.#opts.image, this.#manifest.initrd)],
      ...['-append', this.#manifest.kernelCommandLine],
      ...['-drive', `file=${disk},if=virtio,format=qcow2,id=disk0,cache=writeback`],
      ...['-drive', `file=${iso},if=ide,media=cdrom,format=raw,readonly=on`],
      ...['-netdev', this.#netdev(sshPort), '-device', `virtio-net-pci,netdev=net0,mac=${macOfNet0(vm)}`],
      ...['-chardev', `socket,path=${qga},server=on,wait=off,id=qga0`, '-device', 'virtio-serial', '-device', 'virtserialport,chardev=qga0,name=org.qemu.guest_agent.0'],
      ...['-qmp', `unix:${qmp},server=on,wait=off`],
      ...['-chardev', `file,id=serial0,path=${serialLog},append=on`, '-serial', 'chardev:serial0'],
    ];
    const child = spawn('setpriv', ['--pdeathsig', 'SIGKILL', '--', 'qemu-system-x86_64', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    const exited = new Promise<void>((done) => child.once('exit', () => done()));
    const info: RealGuestInfo = { vmid: vm.vmid, pid: child.pid ?? 0, ssh: { host: '127.0.0.1', port: sshPort }, serialLog, disk, accel };
    const guest: RunningGuest = { child, info, qmp, qga, exited, stderr: () => stderr };
    // For a person at the machine: how to reach this guest (`ssh -p <port> <user>@127.0.0.1`).
    writeFileSync(join(dir, 'guest.json'), JSON.stringify(info, null, 2) + '\n');
    this.#guests.set(vm.vmid, guest);
    void exited.then(() => {
      if (this.#guests.get(vm.vmid) !== guest) return;
      this.#guests.delete(vm.vmid);
      this.onExit(vm.vmid, info.pid);
    });
    // QEMU is up once its monitor answers; it may also die at once (bad image, no memory): say why.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const status = await Promise.race([qmpCall(qmp, 'query-status', undefined, 2000).catch(() => undefined), exited.then(() => 'exited' as const)]);
      if (status === 'exited') throw new Error(`QEMU exited at start: ${stderr.trim() || 'no message'}`);
      if (status) break;
      if (Date.now() > deadline) {
        await this.kill(vm.vmid);
        throw new Error(`QEMU's monitor did not answer within 30 s: ${stderr.trim()}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    return info;
  }

  /** ACPI power button; resolves true when the guest powered off within `timeoutMs`. */
  async powerdown(vmid: number, timeoutMs: number): Promise<boolean> {
    const guest = this.#guests.get(vmid);
    if (!guest) return true;
    await qmpCall(guest.qmp, 'system_powerdown').catch(() => undefined);
    return Promise.race([guest.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs).unref())]);
  }

  /** Ends QEMU (`qm stop`): SIGTERM, and SIGKILL when it lingers. Resolves once the process is gone. */
  async kill(vmid: number): Promise<void> {
    const guest = this.#guests.get(vmid);
    if (!guest) return;
    this.#guests.delete(vmid);
    guest.child.kill('SIGTERM');
    const timer = setTimeout(() => guest.child.kill('SIGKILL'), 5000);
    await guest.exited;
    clearTimeout(timer);
  }

  async reset(vmid: number): Promise<void> {
    await this.#qmp(vmid, 'system_reset');
  }

  async pause(vmid: number, paused: boolean): Promise<void> {
    await this.#qmp(vmid, paused ? 'stop' : 'cont');
  }

  /** The guest agent: a ping first (3 s, as PVE), then the command. */
  async agent(vmid: number, command: string, args?: Record<string, unknown>, timeoutMs = 10_000): Promise<unknown> {
    const guest = this.#guests.get(vmid);
    if (!guest) throw new AgentUnavailable('QEMU guest agent is not running');
    try {
      await qgaCall(guest.qga, 'guest-ping', undefined, 3000);
    } catch {
      throw new AgentUnavailable('QEMU guest agent is not running');
    }
    try {
      return await qgaCall(guest.qga, `guest-${command}`, args, timeoutMs);
    } catch (err) {
      throw new AgentUnavailable(`VM ${vmid} qga command 'guest-${command}' failed - ${(err as Error).message.replace(/^no answer.*/, 'got timeout')}`);
    }
  }

  /** Disk growth: the running QEMU's block device, else the image file itself. */
  async resize(vmid: number, bytes: number): Promise<void> {
    const guest = this.#guests.get(vmid);
    if (guest) return void (await qmpCall(guest.qmp, 'block_resize', { device: 'disk0', size: bytes }));
    const disk = join(this.vmDir(vmid), 'disk.qcow2');
    if (existsSync(disk)) await this.#growTo(disk, bytes);
  }

  /** `import-from`: the VM's disk becomes a qcow2 copy of the image (`qemu-img convert`, as qemu-server imports). */
  async importDisk(vmid: number, image: string, format: string): Promise<void> {
    const dir = this.vmDir(vmid);
    mkdirSync(dir, { recursive: true });
    const disk = join(dir, 'disk.qcow2');
    rmSync(disk, { force: true });
    await run('qemu-img', ['convert', '-q', '-f', format, '-O', 'qcow2', image, disk]);
  }

  /** A full clone of a VM with a disk of its own copies it (a linked clone stands on it at its first start instead). */
  async fullCloneDisk(sourceVmid: number, vmid: number): Promise<void> {
    const source = join(this.vmDir(sourceVmid), 'disk.qcow2');
    if (!existsSync(source)) return;
    await this.importDisk(vmid, source, 'qcow2');
  }

  /** Destroy: the process (if any) and every file of the VM. */
  async destroy(vmid: number): Promise<void> {
    await this.kill(vmid);
    rmSync(this.vmDir(vmid), { recursive: true, force: true });
  }

  /** The world stops: every QEMU this instance started ends. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.#guests.keys()].map((vmid) => this.kill(vmid)));
    process.removeListener('exit', this.#killOnExit);
    rmSync(this.#sockets, { recursive: true, force: true });
  }

  /** KVM when it really boots a kernel here (nested, paravirtual KVM may not), else TCG; probed once. */
  accelerator(): Promise<'kvm' | 'tcg'> {
    if (this.#opts.accel !== 'auto') return Promise.resolve(this.#opts.accel);
    this.#accel ??= probeKvm(join(this.#opts.image, this.#manifest.kernel), this.#sockets);
    return this.#accel;
  }

  #netdev(sshPort: number): string {
    const forwards = this.#opts.guestForwards.map((f) => `,guestfwd=tcp:${f.address}:${f.port}-cmd:${f.command.replaceAll(',', ',,')}`);
    return `user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:${sshPort}-:22${forwards.join('')}`;
  }

  async #qmp(vmid: number, command: string, args?: Record<string, unknown>): Promise<unknown> {
    const guest = this.#guests.get(vmid);
    if (!guest) throw new Error(`VM ${vmid} not running`);
    return qmpCall(guest.qmp, command, args);
  }

  async #growTo(disk: string, bytes: number): Promise<void> {
    const { stdout } = await run('qemu-img', ['info', '--output=json', '-U', disk]);
    const size = (JSON.parse(stdout) as { 'virtual-size': number })['virtual-size'];
    if (bytes > size) await run('qemu-img', ['resize', '-q', disk, String(bytes)]);
  }
}

/** Boots the image's kernel with no root file system: under working KVM it panics within seconds, and QEMU exits. */
async function probeKvm(kernel: string, scratch: string): Promise<'kvm' | 'tcg'> {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return 'tcg';
  }
  const log = join(scratch, 'kvm-probe.log');
  const args = ['-accel', 'kvm', '-cpu', 'host', '-machine', 'pc', '-m', '256', '-nodefaults', '-display', 'none', '-no-reboot'];
  args.push('-kernel', kernel, '-append', 'console=ttyS0 panic=-1 root=/dev/nonexistent', '-serial', `file:${log}`);
  await new Promise<void>((done) => {
    const child = spawn('qemu-system-x86_64', args, { stdio: 'ignore' });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('exit', () => {
      clearTimeout(timer);
      done();
    });
    child.once('error', () => done());
  });
  const text = existsSync(log) ? readFileSync(log, 'utf8') : '';
  return /Kernel panic|VFS: Unable to mount root/.test(text) ? 'kvm' : 'tcg';
}

function vcpus(vm: VmState): number {
  return Number(vm.config.cores ?? 1) * Number(vm.config.sockets ?? 1);
}

function memoryMiB(vm: VmState): number {
  const memory = vm.config.memory ?? '512';
  return Number(/^\d+$/.test(memory) ? memory : (/current=(\d+)/.exec(memory)?.[1] ?? 512));
}

function macOfNet0(vm: VmState): string {
  const net0 = vm.config.net0 ?? '';
  const mac = /([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5})/.exec(net0)?.[1];
  return (mac ?? '52:54:00:12:34:56').toLowerCase();
}

/** Whether this machine can run the mode at all, and if not, why (tests fail with this in CI). */
export function realGuestPrerequisites(): string | undefined {
  for (const tool of ['qemu-system-x86_64', 'qemu-img', 'genisoimage', 'setpriv']) {
    const found = (process.env.PATH ?? '').split(':').some((d) => {
      try {
        return statSync(join(d, tool)).isFile();
      } catch {
        return false;
      }
    });
    if (!found) return `'${tool}' is not installed (apt-get install qemu-system-x86 qemu-utils genisoimage util-linux)`;
  }
  return undefined;
}
