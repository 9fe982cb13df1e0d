import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { Agent, fetch } from 'undici';
import { PveClient } from '../../src/clients/pve';
import { SftpClient } from '../../src/clients/sftp';
import { simulatorTimings } from '../../src/embedded/simulatorTimings';
import type { RealGuestInfo } from '../../src/simulators/pve';
import { SNIPPETS_DIR, startSimulatedWorld, type SimulatedWorld } from '../../src/simulators/world';
import type { GuestForward } from '../../src/simulators/pve/realGuests';

/**
 * What the real-guest tests share (issue 26): the Debian image, a simulated world whose PVE boots it under QEMU with
 * the test's guest forwards, a VM made the way pveflow makes one (linked clone, snippet over SFTP, `cicustom`, start),
 * and bounded waits that fail quoting the guest's serial console.
 */

/**
 * The project's guest image, built (or found built) by scripts/build-guest-image.sh; with `netbird`, one that
 * carries the NetBird client (the tests that enrol the guest, or watch it fail to).
 */
export function guestImage(opts: { netbird?: boolean } = {}): string {
  const build = spawnSync('bash', ['scripts/build-guest-image.sh'], { encoding: 'utf8', timeout: 20 * 60_000 });
  if (build.status !== 0) throw new Error(`scripts/build-guest-image.sh failed (${build.status}): ${build.stderr.slice(-3000)}`);
  const image = build.stdout.trim().split('\n').at(-1)!;
  process.stderr.write(`guest image ${image}: ${build.stderr.trim().split('\n').at(-1)}\n`);
  if (opts.netbird) {
    const manifest = JSON.parse(readFileSync(join(image, 'manifest.json'), 'utf8')) as { netbirdClient?: { present: boolean } };
    if (!manifest.netbirdClient?.present) throw new Error(`the guest image ${image} has no NetBird client: build NetBird first (bash scripts/install-netbird.sh), then the image`);
  }
  return image;
}

/** Never silently: in CI this machine must run the test; elsewhere the skip says why. True when the test may go on. */
export function runnableOrSkip(t: TestContext, reasonNotRunnable: string | undefined, what: string): boolean {
  if (!reasonNotRunnable) return true;
  if (process.env.CI) assert.fail(`${what}: ${reasonNotRunnable}`);
  t.skip(`${what}: ${reasonNotRunnable}`);
  return false;
}

export interface RealGuestWorld {
  world: SimulatedWorld;
  pve: PveClient;
  /** Trusts the world's PVE certificate: for the agent calls pveflow's client has no method for. */
  agent: Agent;
  /** One VM of this world, made and watched as pveflow would. */
  vm(opts: { node: string; vmid: number; bootWaitMs: number; failureContext?: () => string }): RealGuestVm;
  stop(): Promise<void>;
}

/** A simulated world (fast timings) whose PVE runs real guests from `image`, each reaching only `guestForwards`. */
export async function startRealGuestWorld(dir: string, image: string, guestForwards: GuestForward[]): Promise<RealGuestWorld> {
  // The guests enrol in a NetBird of the test's own, or fail to: the simulated one would only refuse their keys.
  const world = await startSimulatedWorld({ dir: join(dir, 'world'), timing: simulatorTimings.fast, realGuests: { image, guestForwards }, simulatedEnrolment: false });
  const ca = readFileSync(world.env.PVE_CA_FILE, 'utf8');
  const pve = new PveClient({ endpoint: world.env.PVE_ENDPOINT, tokenId: world.env.PVE_TOKEN_ID, tokenSecret: world.env.PVE_TOKEN_SECRET, ca, timeoutMs: 60_000 });
  const agent = new Agent({ connect: { ca } });
  let stopped = false;
  return {
    world,
    pve,
    agent,
    vm: (opts) => new RealGuestVm(world, pve, agent, opts),
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await world.stop();
      await pve.close();
      await agent.close();
    },
  };
}

export class RealGuestVm {
  readonly node: string;
  readonly vmid: number;
  private readonly bootWaitMs: number;
  private readonly failureContext: (() => string) | undefined;
  /** The QEMU last seen running this VM: its serial log is quoted when a wait fails. */
  guest: RealGuestInfo | undefined;

  constructor(
    private readonly world: SimulatedWorld,
    private readonly pve: PveClient,
    private readonly agent: Agent,
    opts: { node: string; vmid: number; bootWaitMs: number; failureContext?: () => string },
  ) {
    this.node = opts.node;
    this.vmid = opts.vmid;
    this.bootWaitMs = opts.bootWaitMs;
    this.failureContext = opts.failureContext;
  }

  /** As pveflow makes it: a linked clone of the template, its snippet uploaded over SFTP, `cicustom` pointing at it. */
  async cloneWithSnippet(template: number, name: string, snippetFile: string, userData: string | Buffer): Promise<void> {
    const { node, vmid, world: w, pve } = this;
    await this.task(await pve.cloneVm(node, template, { newid: vmid, name, pool: 'pveflow' }));
    const [host, port] = w.env.SSH_NODES.split(',')
      .find((n) => n.startsWith(`${node}=`))!
      .slice(node.length + 1)
      .split(':');
    const fingerprint = w.env.SSH_HOST_FINGERPRINTS.split(',')
      .find((n) => n.startsWith(`${node}=`))!
      .slice(node.length + 1);
    const sftp = new SftpClient({ host: host!, port: Number(port), username: w.env.SSH_USER, privateKey: readFileSync(w.env.SSH_PRIVATE_KEY_FILE, 'utf8'), hostKeyFingerprint: fingerprint });
    await sftp.upload(`${SNIPPETS_DIR}/${snippetFile}`, userData);
    await sftp.close();
    await this.task(await pve.updateVmConfig(node, vmid, { cicustom: `user=local:snippets/${snippetFile}`, ipconfig0: 'ip=dhcp' }));
  }

  /** Starts the VM through the API; the real guest it runs. */
  async start(): Promise<RealGuestInfo> {
    await this.task(await this.pve.vmPower(this.node, this.vmid, 'start'));
    return this.attach();
  }

  /** The QEMU running the VM now (a reboot starts another). */
  attach(): RealGuestInfo {
    this.guest = this.world.pve.realGuest(this.vmid);
    assert.ok(this.guest, 'the started VM runs a real guest');
    return this.guest;
  }

  async task(upid: string | null): Promise<void> {
    if (!upid) return;
    await this.waitFor(`task ${upid}`, async () => (await this.pve.taskStatus(upid)).status === 'stopped', 15 * 60_000, 500);
    const status = await this.pve.taskStatus(upid);
    if (status.exitstatus !== 'OK') assert.fail(`task ${upid} ended ${status.exitstatus}: ${(await this.pve.taskLogTail(upid)).join('\n')}`);
  }

  async bootedToAddress(): Promise<string> {
    let address = '';
    await this.waitFor('the guest agent to report an IPv4 address', async () => {
      const interfaces = await this.pve.guestNetworkInterfaces(this.node, this.vmid).catch(() => undefined);
      const eth0 = interfaces?.result.find((i) => i.name === 'eth0');
      address = eth0?.['ip-addresses']?.find((a) => a['ip-address-type'] === 'ipv4')?.['ip-address'] ?? '';
      return address !== '';
    });
    return address;
  }

  /** `GET .../agent/file-read` (raw: pveflow's client has no call for it). */
  async readGuestFile(file: string): Promise<string> {
    const reply = await this.api('GET', `/nodes/${this.node}/qemu/${this.vmid}/agent/file-read?file=${encodeURIComponent(file)}`);
    return (reply as { content: string }).content;
  }

  /** `POST .../agent/exec`, then `exec-status` until it exited. */
  async guestExec(command: string[]): Promise<{ exitcode: number; out: string }> {
    const { pid } = (await this.api('POST', `/nodes/${this.node}/qemu/${this.vmid}/agent/exec`, { command })) as { pid: number };
    let status: { exited: number | boolean; exitcode?: number; 'out-data'?: string } = { exited: 0 };
    await this.waitFor(`'${command.join(' ')}' in the guest`, async () => {
      status = (await this.api('GET', `/nodes/${this.node}/qemu/${this.vmid}/agent/exec-status?pid=${pid}`)) as typeof status;
      return Boolean(status.exited);
    });
    return { exitcode: status.exitcode ?? -1, out: status['out-data'] ?? '' };
  }

  async api(method: 'GET' | 'POST', path: string, json?: unknown): Promise<unknown> {
    const { env } = this.world;
    const res = await fetch(`${env.PVE_ENDPOINT}/api2/json${path}`, {
      method,
      dispatcher: this.agent,
      headers: { authorization: `PVEAPIToken=${env.PVE_TOKEN_ID}=${env.PVE_TOKEN_SECRET}`, ...(json ? { 'content-type': 'application/json' } : {}) },
      body: json ? JSON.stringify(json) : undefined,
      signal: AbortSignal.timeout(60_000),
    });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${res.statusText}`);
    return ((await res.json()) as { data: unknown }).data;
  }

  /** Polls `check` until true; past the deadline it fails quoting the end of the guest's serial console. */
  async waitFor(what: string, check: () => Promise<boolean>, timeoutMs = this.bootWaitMs, everyMs = 3000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (await check().catch(() => false)) return;
      if (Date.now() > deadline) {
        const guest = this.guest;
        const log = guest && existsSync(guest.serialLog) ? readFileSync(guest.serialLog, 'utf8').split('\n').slice(-40).join('\n') : '(no serial console log)';
        assert.fail(`waited ${Math.round(timeoutMs / 1000)} s for ${what}; the guest's serial console ends:\n${log}${this.failureContext ? `\n${this.failureContext()}` : ''}`);
      }
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }
}

/** The system's ssh client with `keyFile` as `user` (asynchronous: the simulator serves from this same process). */
export function sshRun(keyFile: string, user: string, info: RealGuestInfo, command: string, input?: string): Promise<{ status: number; stdout: string; stderr: string }> {
  const args = ['-i', keyFile, '-p', String(info.ssh.port), '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=30'];
  return new Promise((done) => {
    const child = execFile('ssh', [...args, `${user}@${info.ssh.host}`, command], { encoding: 'utf8', timeout: 120_000 }, (err, stdout, stderr) => {
      done({ status: err ? (typeof err.code === 'number' ? err.code : 255) : 0, stdout, stderr });
    });
    child.stdin?.end(input ?? '');
  });
}
