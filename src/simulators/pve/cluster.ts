import { createHash, randomUUID } from 'node:crypto';
import type { ClusterSeed, NodeSeed, StorageSeed } from './seed';
import type { PoolMembership } from './permissions';

/**
 * The cluster's state as pmxcfs and pvestatd hold it: nodes, storages, pools and the vmlist (every guest with its
 * node and config). Handlers and task workers change it; nothing here knows about HTTP.
 */
export type VmConfig = Record<string, string>;

export type PowerStatus = 'running' | 'stopped';
/** What pvestatd pushes as a VM's status: the QMP status (a paused VM is `paused`, not `running`). */
export type ObservedStatus = PowerStatus | 'paused';

export interface RunState {
  pid: number;
  /** When the start task ended (ms since epoch). */
  startedAt: number;
  /** The guest's DHCP lease. */
  ipv4: string;
  /** Set when cloud-init gave a static address (`ipconfig0: ip=a.b.c.d/nn`): no DHCP wait, this prefix. */
  ipv4Prefix?: number;
  staticIpv4?: boolean;
  agentTimers: NodeJS.Timeout[];
  /** Suspended to RAM (`qmpstatus: paused`); the process still runs. */
  paused?: boolean;
  /** A fault made this boot's guest agent never answer. */
  agentBroken?: boolean;
  /** The host name cloud-init gave the guest at this boot (`get-host-name`). */
  hostName?: string;
  /** The guest's first boot was announced to the world (`onGuestBoot`): a restored VM is not booted twice. */
  guestBooted?: boolean;
}

export interface SnapshotState {
  name: string;
  snaptime: number;
  description?: string;
  vmstate: boolean;
  parent?: string;
  /** The config at snapshot time (without `parent`, `lock`, pending). */
  config: VmConfig;
  /** Whether the VM was running (a RAM snapshot resumes it on rollback). */
  running: boolean;
}

export interface HaResource {
  sid: string;
  vmid: number;
  state: 'started' | 'stopped' | 'disabled' | 'ignored';
  comment?: string;
  max_restart?: number;
  max_relocate?: number;
  failback?: number;
  group?: string;
}

export interface VmState {
  vmid: number;
  node: string;
  config: VmConfig;
  pool?: string;
  run?: RunState;
  /** Power-state changes as pvestatd would observe them, oldest first; the first entry is the VM's creation. */
  statusLog: { at: number; status: ObservedStatus }[];
  /** The `[pending]` section: changes to a running VM that wait for its next PVE-initiated stop/start/reboot. */
  pending?: VmConfig;
  pendingDelete?: string[];
  snapshots?: Map<string, SnapshotState>;
  /** The cloud-init instance id the guest last ran its per-instance modules for (kept on the VM's disk in a real guest). */
  cloudInitInstance?: string;
}

export interface PoolState {
  poolid: string;
  comment?: string;
  storages: Set<string>;
}

export class ClusterState implements PoolMembership {
  readonly nodes = new Map<string, NodeSeed>();
  readonly storages = new Map<string, StorageSeed>();
  readonly pools = new Map<string, PoolState>();
  readonly vms = new Map<number, VmState>();
  /** HA resources by vmid (`ha/resources.cfg`). */
  readonly ha = new Map<number, HaResource>();
  /** When the simulated cluster came up (seeded offline nodes have been down since before that). */
  readonly bootedAt = Date.now();
  readonly dhcpPrefix: string;
  readonly clusterName: string;
  /** The simulated DHCP server's next lease (kept in a snapshot, so that a restored world hands out no address twice). */
  nextLease = 100;
  private nextPid = 0x1000 + Math.floor(Math.random() * 0x10000);

  constructor(seed: ClusterSeed) {
    for (const n of seed.nodes) this.nodes.set(n.name, { status: 'online', ...n });
    for (const s of seed.storages) this.storages.set(s.id, { ...s });
    for (const p of seed.pools) this.pools.set(p.poolid, { poolid: p.poolid, comment: p.comment, storages: new Set(p.storages ?? []) });
    const longAgo = Date.now() - 3_600_000;
    for (const v of seed.vms) {
      const config = Object.fromEntries(Object.entries(v.config).map(([k, val]) => [k, String(val)]));
      const vm: VmState = { vmid: v.vmid, node: v.node, config, pool: v.pool, statusLog: [{ at: longAgo, status: 'stopped' }] };
      this.vms.set(v.vmid, vm);
      if (v.running) this.markRunning(vm, longAgo);
    }
    this.dhcpPrefix = seed.dhcpPrefix ?? '10.20';
    this.clusterName = seed.clusterName ?? 'pveflow-sim';
  }

  poolOfVm(vmid: number): string | undefined {
    return this.vms.get(vmid)?.pool;
  }

  poolsOfStorage(storage: string): string[] {
    return [...this.pools.values()].filter((p) => p.storages.has(storage)).map((p) => p.poolid);
  }

  /** The VM if its config lives on `node` (PVE looks configs up per node). */
  vmOnNode(node: string, vmid: number): VmState | undefined {
    const vm = this.vms.get(vmid);
    return vm && vm.node === node ? vm : undefined;
  }

  storageEnabledOn(storage: StorageSeed, node: string): boolean {
    return !storage.nodes || storage.nodes.includes(node);
  }

  allocatePid(): number {
    this.nextPid = (this.nextPid + 1 + Math.floor(Math.random() * 64)) % 0x400000;
    return this.nextPid;
  }

  markRunning(vm: VmState, at: number): RunState {
    // cloud-init configures `ipconfig0`'s static address; anything else asks the (simulated) DHCP server.
    const fixed = /(?:^|,)ip=(\d+\.\d+\.\d+\.\d+)\/(\d+)/.exec(vm.config.ipconfig0 ?? '');
    const lease = fixed ? 0 : this.nextLease++;
    const run: RunState = {
      pid: this.allocatePid(),
      startedAt: at,
      ipv4: fixed ? fixed[1]! : `${this.dhcpPrefix}.${Math.floor(lease / 254) % 256}.${(lease % 254) + 1}`,
      ...(fixed ? { ipv4Prefix: Number(fixed[2]), staticIpv4: true } : {}),
      agentTimers: [],
    };
    vm.run = run;
    this.recordStatus(vm, 'running', at);
    return run;
  }

  markStopped(vm: VmState, at: number): void {
    for (const t of vm.run?.agentTimers ?? []) clearTimeout(t);
    vm.run = undefined;
    this.recordStatus(vm, 'stopped', at);
  }

  markPaused(vm: VmState, paused: boolean, at: number): void {
    if (!vm.run) return;
    vm.run.paused = paused;
    this.recordStatus(vm, paused ? 'paused' : 'running', at);
  }

  private recordStatus(vm: VmState, status: ObservedStatus, at: number): void {
    vm.statusLog.push({ at, status });
    // Only the newest entry that pvestatd could already have seen matters, plus what came after it.
    while (vm.statusLog.length > 4) vm.statusLog.shift();
  }

  /** The power status `/cluster/resources` shows: what pvestatd saw `lagMs` ago ('unknown' before its first look). */
  observedStatus(vm: VmState, now: number, lagMs: number): ObservedStatus | 'unknown' {
    let seen: ObservedStatus | 'unknown' = 'unknown';
    for (const entry of vm.statusLog) if (entry.at <= now - lagMs) seen = entry.status;
    return seen;
  }

  addVm(vm: VmState): void {
    this.vms.set(vm.vmid, vm);
  }

  removeVm(vmid: number): void {
    const vm = this.vms.get(vmid);
    if (vm) for (const t of vm.run?.agentTimers ?? []) clearTimeout(t);
    this.vms.delete(vmid);
    this.ha.delete(vmid);
  }

  /** Lowest free VMID in [100, 1e9) — no reservation, exactly like PVE. */
  lowestFreeVmid(): number {
    let id = 100;
    while (this.vms.has(id)) id++;
    return id;
  }
}

/** The config file text the digest is computed over (key order as written). */
export function configDigest(config: VmConfig): string {
  const text = Object.entries(config)
    .filter(([k]) => k !== 'description')
    .map(([k, v]) => `${k}: ${v}\n`)
    .join('');
  const description =
    config.description !== undefined
      ? config.description
          .split('\n')
          .map((l) => `#${l}\n`)
          .join('')
      : '';
  return createHash('sha1')
    .update(description + text)
    .digest('hex');
}

export function randomMac(): string {
  const bytes = [0xbc, 0x24, 0x11, ...Array.from({ length: 3 }, () => Math.floor(Math.random() * 256))];
  return bytes.map((b) => b.toString(16).toUpperCase().padStart(2, '0')).join(':');
}

export function newUuid(): string {
  return randomUUID();
}

/** Disk keys of a qemu config: the keys whose value is a volume (cdrom or disk). */
export const DRIVE_KEY_RE = /^(ide|sata|scsi|virtio|efidisk|tpmstate)\d+$/;

export function parseSize(size: string | undefined): number {
  const m = /^(\d+(?:\.\d+)?)([KMGT])?$/.exec(size ?? '');
  if (!m) return 0;
  const unit = { K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[m[2] as 'K' | 'M' | 'G' | 'T'] ?? 1;
  return Math.floor(Number(m[1]) * unit);
}
