import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { NetbirdClient } from '../clients/netbird';
import { generateSshKeyPair } from '../clients/sftp';
import { createNetbirdSimulator, type NetbirdSimulator } from './netbird';
import { createPveSimulator, defaultClusterSeed, ROOT_TOKEN_ID, type ClusterSeed, type GuestBoot, type PveSimulator, type PveTiming, type RealGuestOptions } from './pve';
import { createSftpServer } from './sftp';
import { WORLD_ACCESS_FILE, writeWorldAccessFile } from './inspection';
import { loadWorldState, resetWorldState, WORLD_STATE_FILE, WorldSaver, type WorldSnapshot } from './persistence';
import { simulatorTls } from './tls';

/** Where a VM's snippets live on a real node, and so on the simulated nodes' SFTP endpoints. */
export const SNIPPETS_DIR = '/var/lib/vz/snippets';

export interface WorldOptions {
  /** Files of the simulated world (CA, SSH keys, the nodes' snippets). */
  dir: string;
  host?: string;
  /** 0 = any free port. */
  pvePort?: number;
  netbirdPort?: number;
  timing?: Partial<PveTiming>;
  /**
   * Use this SSH server (tests: a real OpenSSH sshd on 127.0.0.1) as every node's SFTP endpoint instead of the
   * built-in ones; `dir` is the directory it exposes, which then backs every node's snippets storage.
   */
  externalSsh?: { host: string; port: number; username: string; privateKey: string; hostKeyFingerprint: string; dir: string };
  /** Changes to the default cluster before it starts (tests: more pools, templates, users, tokens, roles, ACLs). */
  adjustSeed?(seed: ClusterSeed): ClusterSeed | void;
  /** NetBird users (the consultants); the embedded default seeds a few. */
  netbirdUsers?: Array<{ email: string; name: string; role?: 'owner' | 'admin' | 'user' }>;
  /**
   * Keep the world across restarts in `<dir>/world.json` (VMs, tasks, NetBird, tokens, SFTP keys and ports; the
   * snippets are files in `dir` anyway) and start from it; `reset` forgets it first. Without it the world is new.
   */
  persist?: { reset?: boolean };
  /**
   * Real guests (off by default): every VM start boots the project's Debian image under QEMU (see
   * src/simulators/pve/README.md). QEMU's files go under `<dir>/qemu` unless `dir` says otherwise; stopping the
   * world ends every QEMU it started.
   */
  realGuests?: Omit<RealGuestOptions, 'dir'> & { dir?: string };
  /**
   * Whether a VM that boots with a NetBird setup key in its snippet joins the simulated NetBird (default true, as
   * `netbird up` would). Off when the setup keys are not the simulated NetBird's: pveflow is pointed at a real
   * NetBird (NETBIRD_API_URL), or a test's real guests enrol (or fail to) on their own.
   */
  simulatedEnrolment?: boolean;
}

/** How a start found the world. */
export type WorldOrigin = { kind: 'restored'; file: string; savedAt: string; vms: number; peers: number } | { kind: 'new'; file?: string } | { kind: 'reset'; file: string; hadState: boolean };

/** How pveflow reaches the simulated world: the same settings a real cluster is given through the environment. */
export type WorldEndpoints = {
  PVE_ENDPOINT: string;
  PVE_TOKEN_ID: string;
  PVE_TOKEN_SECRET: string;
  PVE_CA_FILE: string;
  PVE_POOL: string;
  PVE_TEMPLATE_VMID: string;
  PVE_SNIPPETS_DIR: string;
  SSH_USER: string;
  SSH_PRIVATE_KEY_FILE: string;
  SSH_NODES: string;
  SSH_HOST_FINGERPRINTS: string;
  NETBIRD_API_URL: string;
  NETBIRD_TOKEN: string;
  NETBIRD_CA_FILE: string;
};

export interface SimulatedWorld {
  env: WorldEndpoints;
  pve: PveSimulator;
  netbird: NetbirdSimulator;
  /** A root@pam token: for tests that play the operator changing the cluster behind pveflow's back. */
  rootToken: { id: string; secret: string };
  /** Each node's snippets directory on disk (what the SFTP endpoint writes into). */
  snippetsDirOf(node: string): string;
  /** The world's endpoints, tokens, CA and host keys for a person or `pveflow doctor` (mode 0600; inspection.ts). */
  accessFile: string;
  origin: WorldOrigin;
  /** Real-guest mode: where each VM's disk, console log and `guest.json` (its forwarded SSH port) are. */
  realGuestsDir?: string;
  /** Stops every server, then writes the world's state one last time (when persisted). */
  stop(): Promise<void>;
}

export const defaultNetbirdUsers = [
  { email: 'owner@pveflow.example', name: 'NetBird Owner', role: 'owner' as const },
  { email: 'alice@consultancy.example', name: 'Alice Consultant' },
  { email: 'bob@consultancy.example', name: 'Bob Consultant' },
];

/**
 * The world in a box: a 3-node Proxmox VE cluster, one SFTP endpoint per node writing into that node's snippets
 * directory, and NetBird. They are one world: a VM that boots with a NetBird setup key in its cloud-init snippet
 * joins the simulated NetBird as a peer, as a real guest running `netbird up` would.
 */
export async function startSimulatedWorld(opts: WorldOptions): Promise<SimulatedWorld> {
  const host = opts.host ?? '127.0.0.1';
  mkdirSync(opts.dir, { recursive: true });
  const tls = await simulatorTls(opts.dir);
  const external = opts.externalSsh;
  const snippetsDirOf = (node: string) => external?.dir ?? join(opts.dir, 'nodes', node, 'snippets');
  const stops: Array<() => Promise<void>> = [];

  const stateFile = join(opts.dir, WORLD_STATE_FILE);
  let origin: WorldOrigin = { kind: 'new', ...(opts.persist ? { file: stateFile } : {}) };
  if (opts.persist?.reset) origin = { kind: 'reset', file: stateFile, ...resetWorldState(opts.dir) };
  const saved = opts.persist ? loadWorldState(opts.dir) : undefined;
  if (saved) origin = { kind: 'restored', file: stateFile, savedAt: saved.savedAt, vms: saved.pve.vms.length, peers: saved.netbird.peers.length };
  let saver: WorldSaver | undefined;
  const changed = () => saver?.changed();

  try {
    const netbirdToken = saved?.secrets.netbirdToken ?? `nbp_${randomBytes(18).toString('base64url')}`;
    const netbird = createNetbirdSimulator({
      tokens: [netbirdToken],
      users: opts.netbirdUsers ?? defaultNetbirdUsers,
      restore: saved?.netbird,
      onChange: changed,
    });
    const nb = await netbird.listen({ host, port: opts.netbirdPort ?? 0, tls: { key: tls.key, cert: tls.cert } });
    stops.push(nb.close);
    if (!saved) await removeDefaultPolicy(nb.url, netbirdToken, tls.ca);

    const tokenSecret = saved?.secrets.pveToken ?? randomUUID();
    const rootTokenSecret = saved?.secrets.pveRootToken ?? randomUUID();
    const base = defaultClusterSeed({ tokenSecret, rootTokenSecret });
    // A test's own cluster: changed in place, or replaced.
    const seed = opts.adjustSeed?.(base) ?? base;
    const realGuestsDir = opts.realGuests ? (opts.realGuests.dir ?? join(opts.dir, 'qemu')) : undefined;
    const pve = createPveSimulator({
      seed,
      timing: opts.timing,
      snippetsDir: (node) => snippetsDirOf(node),
      storageDir: (storage, node) => join(opts.dir, 'storage', storage, node ?? 'shared'),
      ...(opts.simulatedEnrolment === false ? {} : { onGuestBoot: (boot: GuestBoot) => bootGuest(netbird, boot) }),
      restore: saved?.pve,
      onChange: changed,
      ...(opts.realGuests && realGuestsDir ? { realGuests: { ...opts.realGuests, dir: realGuestsDir } } : {}),
    });
    stops.push(pve.stop);
    const pveServer = await pve.listen({ host, port: opts.pvePort ?? 0, tls: { key: tls.key, cert: tls.cert } });
    stops.push(pveServer.close);

    const client = external ? { privateKey: external.privateKey, publicKey: '' } : saved?.sftp.client.publicKey ? saved.sftp.client : generateSshKeyPair('pveflow@embedded');
    const keyFile = join(opts.dir, 'pveflow-ssh.key');
    writeFileSync(keyFile, client.privateKey, { mode: 0o600 });
    const nodes: string[] = [];
    const fingerprints: string[] = [];
    const sftpNodes: WorldSnapshot['sftp']['nodes'] = {};
    for (const node of pve.dump().nodes.map((n) => n.node)) {
      if (external) {
        nodes.push(`${node}=${external.host}:${external.port}`);
        fingerprints.push(`${node}=${external.hostKeyFingerprint}`);
        continue;
      }
      const before = saved?.sftp.nodes[node];
      const hostKey = before?.hostKey ?? generateSshKeyPair(`root@${node}`).privateKey;
      const sftp = createSftpServer({
        hostKey,
        username: 'root',
        authorizedKeys: [client.publicKey],
        mounts: { [SNIPPETS_DIR]: snippetsDirOf(node) },
      });
      // The same port as before when it is still free: an address someone noted keeps working.
      const running = await sftp.listen({ host, port: before?.port ?? 0 }).catch(() => sftp.listen({ host, port: 0 }));
      stops.push(running.close);
      nodes.push(`${node}=${host}:${running.port}`);
      fingerprints.push(`${node}=${running.hostKeyFingerprint}`);
      sftpNodes[node] = { hostKey, port: running.port };
    }

    if (opts.persist) {
      saver = new WorldSaver(stateFile, () => ({
        format: 'pveflow-simulated-world',
        version: 1,
        savedAt: new Date().toISOString(),
        secrets: { pveToken: tokenSecret, pveRootToken: rootTokenSecret, netbirdToken },
        sftp: { client, nodes: sftpNodes },
        pve: pve.snapshot(),
        netbird: netbird.snapshot(),
      }));
      // The first state file at once: the tokens and keys of this world are then what the next start finds.
      await saver.save();
    }

    const env: WorldEndpoints = {
      PVE_ENDPOINT: new URL(pveServer.url).origin,
      PVE_TOKEN_ID: 'pveflow@pve!automation',
      PVE_TOKEN_SECRET: tokenSecret,
      PVE_CA_FILE: tls.caFile,
      PVE_POOL: 'pveflow',
      PVE_TEMPLATE_VMID: '9000',
      PVE_SNIPPETS_DIR: external?.dir ?? SNIPPETS_DIR,
      SSH_USER: external?.username ?? 'root',
      SSH_PRIVATE_KEY_FILE: keyFile,
      SSH_NODES: nodes.join(','),
      SSH_HOST_FINGERPRINTS: fingerprints.join(','),
      NETBIRD_API_URL: new URL(nb.url).origin,
      NETBIRD_TOKEN: netbirdToken,
      NETBIRD_CA_FILE: tls.caFile,
    };
    const accessFile = join(opts.dir, WORLD_ACCESS_FILE);
    writeWorldAccessFile(accessFile, { ...env, PVE_ROOT_TOKEN_ID: ROOT_TOKEN_ID, PVE_ROOT_TOKEN_SECRET: rootTokenSecret });
    return {
      env,
      pve,
      netbird,
      rootToken: { id: ROOT_TOKEN_ID, secret: rootTokenSecret },
      snippetsDirOf,
      accessFile,
      origin,
      ...(realGuestsDir ? { realGuestsDir } : {}),
      stop: async () => {
        await stopAll(stops);
        await saver?.stop();
      },
    };
  } catch (err) {
    await stopAll(stops);
    throw err;
  }
}

async function stopAll(stops: Array<() => Promise<void>>): Promise<void> {
  for (const stop of stops.reverse()) await stop().catch(() => undefined);
}

/**
 * What docs/operations.md tells an operator to do on a new NetBird account, done the same way, through the API:
 * delete the account's `Default` policy (every peer reaches every peer), which would make every request's one-way
 * policy meaningless and fail `pveflow doctor`. The world's seed, not pveflow: pveflow never deletes it.
 */
async function removeDefaultPolicy(url: string, token: string, ca: string): Promise<void> {
  const operator = new NetbirdClient({ baseUrl: url, token, ca });
  try {
    for (const policy of await operator.listPolicies()) if (policy.name === 'Default') await operator.deletePolicy(policy.id);
  } finally {
    await operator.close();
  }
}

/**
 * What cloud-init does inside a real guest at first boot: `netbird up --setup-key ... --hostname ...` from the
 * user-data's runcmd. A guest without NetBird in its user-data joins nothing; a refused key is the guest's problem
 * (a real one would log it), so it is reported, not thrown into the simulator.
 */
function bootGuest(netbird: NetbirdSimulator, boot: GuestBoot): void {
  // runcmd is per instance: a reboot with the same cloud-init drive does not join NetBird again (a real guest
  // would not, and its one-off key is spent).
  if (!boot.userData || !boot.newInstance) return;
  const enrollment = netbirdEnrollmentOf(boot.userData);
  if (!enrollment) return;
  try {
    netbird.enrollPeer(enrollment);
  } catch (err) {
    process.emitWarning(`simulated guest ${boot.name} (VM ${boot.vmid} on ${boot.node}) could not join NetBird: ${(err as Error).message}`);
  }
}

export function netbirdEnrollmentOf(userData: string): { setupKey: string; hostname: string } | undefined {
  let doc: { hostname?: unknown; runcmd?: unknown } | null;
  try {
    doc = parse(userData) as typeof doc;
  } catch {
    return undefined;
  }
  const runcmd = Array.isArray(doc?.runcmd) ? doc.runcmd : [];
  for (const cmd of runcmd) {
    if (!Array.isArray(cmd) || cmd[0] !== 'netbird' || cmd[1] !== 'up') continue;
    const arg = (flag: string) => {
      const i = cmd.indexOf(flag);
      return i >= 0 && typeof cmd[i + 1] === 'string' ? (cmd[i + 1] as string) : undefined;
    };
    const setupKey = arg('--setup-key');
    const hostname = arg('--hostname') ?? (typeof doc?.hostname === 'string' ? doc.hostname : undefined);
    if (setupKey && hostname) return { setupKey, hostname };
  }
  return undefined;
}
