import type { ClusterState, HaResource, RunState, SnapshotState, VmConfig, VmState } from './cluster';
import type { StorageCapacity } from './capacity';
import type { PersistedTask, TaskRegistry } from './tasks';

/**
 * What of a simulated cluster outlives the simulator's process, as plain JSON: the guests (config, power state, the
 * running guest's lease, pending changes, snapshots), HA resources, tasks, storage allocations and the DHCP server's
 * next lease. What the seed gives (nodes, storages, pools, users, tokens, ACLs, roles) is not kept: it comes from
 * the seed at every start, so a newer seed (e.g. a changed role) applies to a restored world too.
 */
export interface PveSnapshot {
  vms: PersistedVm[];
  ha: HaResource[];
  tasks: PersistedTask[];
  allocations: Record<string, number>;
  nextLease: number;
}

export interface PersistedVm {
  vmid: number;
  node: string;
  config: VmConfig;
  pool?: string;
  run?: Omit<RunState, 'agentTimers'>;
  statusLog: VmState['statusLog'];
  pending?: VmConfig;
  pendingDelete?: string[];
  snapshots?: SnapshotState[];
  cloudInitInstance?: string;
}

/** Tasks kept per node, newest first: PVE's own task index is pruned too, and a long-lived world must not grow without end. */
export const KEPT_TASKS_PER_NODE = 500;

export function snapshotPve(cluster: ClusterState, tasks: TaskRegistry, capacity: StorageCapacity): PveSnapshot {
  const vms = [...cluster.vms.values()].map((vm): PersistedVm => {
    const { agentTimers: _timers, ...run } = vm.run ?? { agentTimers: [] };
    return {
      vmid: vm.vmid,
      node: vm.node,
      config: { ...vm.config },
      ...(vm.pool !== undefined ? { pool: vm.pool } : {}),
      ...(vm.run ? { run: run as PersistedVm['run'] } : {}),
      statusLog: vm.statusLog.map((e) => ({ ...e })),
      ...(vm.pending ? { pending: { ...vm.pending } } : {}),
      ...(vm.pendingDelete ? { pendingDelete: [...vm.pendingDelete] } : {}),
      ...(vm.snapshots?.size ? { snapshots: [...vm.snapshots.values()].map((s) => structuredClone(s)) } : {}),
      ...(vm.cloudInitInstance ? { cloudInitInstance: vm.cloudInitInstance } : {}),
    };
  });
  const perNode = new Map<string, number>();
  const kept = tasks
    .all()
    .reverse()
    .filter((t) => {
      const n = (perNode.get(t.parsed.node) ?? 0) + 1;
      perNode.set(t.parsed.node, n);
      return t.status === 'running' || n <= KEPT_TASKS_PER_NODE;
    })
    .reverse()
    .map((t): PersistedTask => ({
      upid: t.upid,
      identity: { ...t.identity },
      status: t.status,
      ...(t.exitstatus !== undefined ? { exitstatus: t.exitstatus } : {}),
      ...(t.endtime !== undefined ? { endtime: t.endtime } : {}),
      lines: [...t.lines],
    }));
  return {
    vms,
    ha: [...cluster.ha.values()].map((r) => ({ ...r })),
    tasks: kept,
    allocations: capacity.allocations(),
    nextLease: cluster.nextLease,
  };
}

/**
 * Puts a snapshot's guests, HA resources, tasks and allocations in place of the seed's guests. Guests on a node the
 * seed no longer has are dropped (named in the result), as a node removed from a cluster takes its configs along.
 * Returns the running guests whose first boot had not been announced yet, for the caller to resume.
 */
export function restorePve(snapshot: PveSnapshot, cluster: ClusterState, tasks: TaskRegistry, capacity: StorageCapacity): { dropped: number[]; booting: VmState[] } {
  const dropped: number[] = [];
  const booting: VmState[] = [];
  cluster.vms.clear();
  cluster.ha.clear();
  for (const v of snapshot.vms) {
    if (!cluster.nodes.has(v.node)) {
      dropped.push(v.vmid);
      continue;
    }
    const vm: VmState = {
      vmid: v.vmid,
      node: v.node,
      config: { ...v.config },
      ...(v.pool !== undefined ? { pool: v.pool } : {}),
      ...(v.run ? { run: { ...v.run, agentTimers: [] } } : {}),
      statusLog: v.statusLog.map((e) => ({ ...e })),
      ...(v.pending ? { pending: { ...v.pending } } : {}),
      ...(v.pendingDelete ? { pendingDelete: [...v.pendingDelete] } : {}),
      ...(v.snapshots?.length ? { snapshots: new Map(v.snapshots.map((s) => [s.name, structuredClone(s)])) } : {}),
      ...(v.cloudInitInstance ? { cloudInitInstance: v.cloudInitInstance } : {}),
    };
    cluster.addVm(vm);
    if (vm.run && !vm.run.guestBooted) booting.push(vm);
  }
  for (const r of snapshot.ha) if (cluster.vms.has(r.vmid)) cluster.ha.set(r.vmid, { ...r });
  tasks.restore(snapshot.tasks);
  capacity.restoreAllocations(snapshot.allocations);
  cluster.nextLease = Math.max(cluster.nextLease, snapshot.nextLease);
  return { dropped, booting };
}
