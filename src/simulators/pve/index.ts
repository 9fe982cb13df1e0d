import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { listenOn } from '../../net/listenOn';
import { StorageCapacity } from './capacity';
import { ClusterState, type VmState } from './cluster';
import type { GuestBoot, Route, SimContext } from './context';
import type { ControlOptions } from './control';
import { Faults, type FaultClass, type FaultSet } from './faults';
import { ConfigFlocks } from './flocks';
import { readCloudInitSnippets, scheduleGuestBoot } from './guestAgent';
import { accessRoutes } from './handlers/access';
import { agentRoutes } from './handlers/qemuAgent';
import { clusterRoutes } from './handlers/cluster';
import { haRoutes } from './handlers/ha';
import { cloneRoute } from './handlers/qemuClone';
import { configRoutes } from './handlers/qemuConfig';
import { createRoutes } from './handlers/qemuCreate';
import { destroyRoute } from './handlers/qemuDestroy';
import { migrateRoutes } from './handlers/qemuMigrate';
import { powerRoutes } from './handlers/qemuPower';
import { resizeRoute } from './handlers/qemuResize';
import { snapshotRoutes } from './handlers/qemuSnapshot';
import { storageRoutes } from './handlers/storage';
import { downloadRoutes } from './handlers/storageDownload';
import { sdnRoutes } from './handlers/sdn';
import { templateRoute } from './handlers/qemuTemplate';
import { StorageFiles } from './storageFiles';
import { taskRoutes } from './handlers/tasks';
import { nodeHealth } from './nodeHealth';
import { PermissionEngine } from './permissions';
import { Router } from './router';
import { PveApiSchema } from './schema';
import type { ClusterSeed } from './seed';
import { createApiServer } from './server';
import { restorePve, snapshotPve, type PveSnapshot } from './snapshot';
import { TaskRegistry } from './tasks';
import { realisticTiming, type PveTiming } from './timing';
import { RealGuests, type RealGuestInfo, type RealGuestOptions } from './realGuests';

/**
 * The simulated Proxmox VE API server: pveflow's embedded default and the world every test runs against.
 * It follows the real server as the Proxmox behaviour notes (proxmox-behaviour.md) document it and validates every
 * request against the official API schema's facts (pve-api-facts.json).
 */
export type { GuestBoot } from './context';
export type { PveTiming } from './timing';
export { realisticTiming, zeroTiming } from './timing';
export type { ClusterSeed, NodeSeed, StorageSeed, PoolSeed, VmSeed, UserSeed, TokenSeed, AclSeed } from './seed';
export { defaultClusterSeed, ROOT_TOKEN_ID } from './seed';
export type { TaskFailureFault, FaultSet, FaultClass } from './faults';
export type { ControlOptions } from './control';
export { generateSeed, type GenerateSeedOptions } from './seeds/generate';
export type { PveSnapshot } from './snapshot';
export type { GuestForward, RealGuestInfo, RealGuestOptions } from './realGuests';
export { realGuestPrerequisites } from './realGuests';

export interface PveSimulatorOptions {
  seed: ClusterSeed;
  /** Merged over `realisticTiming`. */
  timing?: Partial<PveTiming>;
  /** The directory on disk backing `<storage>:snippets/` on `<node>` (a dir storage with snippets content). */
  snippetsDir(node: string, storage: string): string;
  /**
   * The directory on disk behind a file-based storage (its `import/`, `template/iso/`, `template/cache/`), per node
   * for a local storage, once for a shared one (`node` undefined). Without it the simulator keeps them in a
   * directory of its own under the system's tmp.
   */
  storageDir?(storage: string, node: string | undefined): string;
  /** Fired once per start when the guest agent comes up (cloud-init has run), with the cicustom user-data snippet text. */
  onGuestBoot?(boot: GuestBoot): void;
  /** Enables the control endpoint (`/_sim/...`, outside `/api2`) with this token; without it there is none. */
  control?: ControlOptions;
  /** The state of an earlier run (`snapshot()`), in place of the seed's guests; the seed still gives the rest. */
  restore?: PveSnapshot;
  /** Told after anything may have changed (a write request answered, a task ended): a persisted world saves then. */
  onChange?(): void;
  /** Real-guest mode (off by default): VMs boot the given Debian image under QEMU (`realGuests/`). */
  realGuests?: RealGuestOptions;
}

export interface PveStateDump {
  nodes: { node: string; status: string }[];
  vms: {
    vmid: number;
    node: string;
    name?: string;
    config: Record<string, string>;
    status: 'running' | 'stopped';
    lock?: string;
    pool?: string;
    template: boolean;
    qmpstatus?: 'running' | 'paused' | 'stopped';
    pending?: Record<string, string>;
    pendingDelete?: string[];
    snapshots?: string[];
    ha?: string;
    /** Real-guest mode: the running QEMU, its forwarded SSH port and serial console log. */
    guest?: RealGuestInfo;
  }[];
  tasks: { upid: string; node: string; type: string; id: string; status: 'running' | 'stopped'; exitstatus?: string }[];
  pools: { poolid: string; comment?: string; vms: number[]; storages: string[] }[];
  storages: { storage: string; node: string; total: number; avail: number }[];
  ha: { sid: string; state: string }[];
}

export interface PveSimulator {
  listen(opts: { host?: string; port?: number; tls: { key: string; cert: string } }): Promise<{ url: string; port: number; close(): Promise<void> }>;
  /** JSON-able snapshot of the cluster for assertions. */
  dump(): PveStateDump;
  /** Requests per `METHOD /path/template` (task status/log polls under their own keys). */
  callCounts(): Record<string, number>;
  /** The state a restart keeps, as plain JSON (see `snapshot.ts`). */
  snapshot(): PveSnapshot;
  /** Switch faults on and off for a test (the same classes `POST /_sim/faults` takes). */
  readonly faults: { set(faults: FaultSet): void; clear(kind?: FaultClass): void; list(): ReturnType<Faults['list']> };
  /** Real-guest mode: how to reach a running VM's guest (undefined when it runs none). */
  realGuest(vmid: number): RealGuestInfo | undefined;
  /** Ends every QEMU process the simulator started (real-guest mode); a no-op otherwise. */
  stop(): Promise<void>;
}

const ROUTES: readonly Route[] = [
  ...clusterRoutes,
  ...createRoutes,
  cloneRoute,
  ...configRoutes,
  resizeRoute,
  ...powerRoutes,
  destroyRoute,
  ...migrateRoutes,
  ...snapshotRoutes,
  ...haRoutes,
  ...taskRoutes,
  ...storageRoutes,
  ...downloadRoutes,
  templateRoute,
  ...sdnRoutes,
  ...accessRoutes,
  ...agentRoutes,
];

/** `METHOD /path/template` of every endpoint the simulator serves (for tests that must cover all of them). */
export const implementedRoutes: readonly string[] = ROUTES.map((r) => `${r.method} ${r.path}`);

/** Over `realisticTiming`; a storage allocation keeps its real ratio to the lock timeout unless given. */
function mergeTiming(timing: Partial<PveTiming> | undefined): PveTiming {
  const merged = { ...realisticTiming, ...timing };
  if (timing?.storageAllocMs === undefined) merged.storageAllocMs = merged.flockTimeoutMs / 50;
  return merged;
}

export function createPveSimulator(opts: PveSimulatorOptions): PveSimulator {
  const cluster = new ClusterState(opts.seed);
  const faults = new Faults();
  const sim: SimContext = {
    cluster,
    faults,
    capacity: new StorageCapacity(faults),
    tasks: new TaskRegistry(() => cluster.allocatePid(), faults, opts.onChange),
    flocks: new ConfigFlocks(faults),
    perms: new PermissionEngine(opts.seed.acls, cluster, opts.seed.roles),
    timing: mergeTiming(opts.timing),
    schema: PveApiSchema.fromFacts(),
    snippetsDir: opts.snippetsDir,
    storageFiles: new StorageFiles(opts.storageDir ?? defaultStorageDir()),
    onGuestBoot: opts.onGuestBoot,
  };
  if (opts.realGuests) {
    // A guest that powered itself off (or a QEMU that died) reads stopped, as pvestatd would see it.
    sim.realGuests = new RealGuests(opts.realGuests, (vmid, pid) => {
      const vm = cluster.vms.get(vmid);
      if (vm?.run?.pid === pid) cluster.markStopped(vm, Date.now());
      opts.onChange?.();
    });
  }
  const router = new Router(ROUTES);
  const credentials = {
    users: new Map(opts.seed.users.map((u) => [u.userid, u])),
    tokens: new Map(opts.seed.tokens.map((t) => [t.tokenid, t])),
  };
  const counts = new Map<string, number>();
  if (opts.restore) {
    const { booting } = restorePve(opts.restore, cluster, sim.tasks, sim.capacity);
    for (const vm of booting) resumeGuestBoot(sim, vm);
    // Real guests ended with the world that ran them: their VMs read stopped until started again.
    if (sim.realGuests) for (const vm of cluster.vms.values()) if (vm.run) cluster.markStopped(vm, Date.now());
  }

  const dump = (): PveStateDump => ({
    nodes: [...cluster.nodes.values()].map((n) => ({ node: n.name, status: nodeHealth(sim, n.name).online ? 'online' : 'offline' })),
    vms: [...cluster.vms.values()].map((vm) => ({
      vmid: vm.vmid,
      node: vm.node,
      name: vm.config.name,
      config: { ...vm.config },
      status: vm.run ? 'running' : 'stopped',
      lock: vm.config.lock,
      pool: vm.pool,
      template: vm.config.template === '1',
      qmpstatus: vm.run?.paused ? 'paused' : vm.run ? 'running' : 'stopped',
      ...(vm.pending ? { pending: { ...vm.pending } } : {}),
      ...(vm.pendingDelete ? { pendingDelete: [...vm.pendingDelete] } : {}),
      ...(vm.snapshots?.size ? { snapshots: [...vm.snapshots.keys()] } : {}),
      ...(cluster.ha.has(vm.vmid) ? { ha: cluster.ha.get(vm.vmid)!.state } : {}),
      ...(sim.realGuests?.info(vm.vmid) ? { guest: sim.realGuests.info(vm.vmid) } : {}),
    })),
    tasks: sim.tasks.all().map((t) => ({
      upid: t.upid,
      node: t.parsed.node,
      type: t.parsed.type,
      id: t.parsed.id,
      status: t.status,
      exitstatus: t.exitstatus,
    })),
    pools: [...cluster.pools.values()].map((p) => ({
      poolid: p.poolid,
      comment: p.comment,
      storages: [...p.storages],
      vms: [...cluster.vms.values()].filter((vm) => vm.pool === p.poolid).map((vm) => vm.vmid),
    })),
    storages: [...cluster.storages.values()].flatMap((s) =>
      [...cluster.nodes.keys()]
        .filter((n) => cluster.storageEnabledOn(s, n))
        .map((node) => ({
          storage: s.id,
          node,
          total: s.total,
          avail: sim.capacity.avail(s, node),
        })),
    ),
    ha: [...cluster.ha.values()].map((r) => ({ sid: r.sid, state: r.state })),
  });

  return {
    faults: {
      set: (f) => faults.set(f),
      clear: (kind) => faults.clear(kind),
      list: () => faults.list(),
    },
    async listen({ host = '127.0.0.1', port = 0, tls }) {
      const server = createApiServer({ sim, router, credentials, counts, control: opts.control, dump }, tls);
      if (opts.onChange) {
        const changed = opts.onChange;
        server.on('request', (req: IncomingMessage, res: ServerResponse) => {
          if (req.method !== 'GET' && req.method !== 'HEAD') res.once('finish', changed);
        });
      }
      const actual = await listenOn(server, host, port, { what: 'the simulated Proxmox VE API' });
      return {
        url: `https://${host}:${actual}/api2/json`,
        port: actual,
        close: () =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
          }),
      };
    },
    dump,
    realGuest: (vmid) => sim.realGuests?.info(vmid),
    stop: async () => {
      await sim.realGuests?.stopAll();
    },
    snapshot: () => snapshotPve(cluster, sim.tasks, sim.capacity),
    callCounts() {
      return Object.fromEntries(counts);
    },
  };
}

/** Storage files in a directory of the simulator's own, made at the first use. */
function defaultStorageDir(): (storage: string, node: string | undefined) => string {
  let root: string | undefined;
  return (storage, node) => {
    root ??= mkdtempSync(join(tmpdir(), 'pveflow-sim-storage-'));
    return join(root, storage, node ?? 'shared');
  };
}

/** A guest that was booting when the earlier run stopped: cloud-init reads its snippets again and the boot goes on. */
function resumeGuestBoot(sim: SimContext, vm: VmState): void {
  let userData: string | undefined;
  try {
    userData = readCloudInitSnippets(sim, vm).userData;
  } catch {
    // The snippet went away in between: the guest boots without user-data, as a real one would.
  }
  scheduleGuestBoot(sim, vm, vm.run!, userData);
}
