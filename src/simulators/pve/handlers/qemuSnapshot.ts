import type { ApiRequest, Route, SimContext } from '../context';
import type { SnapshotState, VmConfig, VmState } from '../cluster';
import { configMissingText, pveDie } from '../errors';
import { sleep } from '../timing';
import { digestOf } from './qemuConfig';
import { drivesOf, loadVm } from './qemuCommon';

/**
 * Snapshots (`AbstractConfig.pm snapshot_create/delete/rollback`, reference §4.16). The list ends with the
 * `current` entry ("You are here!"); `current` and `pending` are reserved names (early 500); duplicates,
 * templates, a held `lock:` and storages without snapshot support fail in the worker, which holds
 * `lock: snapshot` / `snapshot-delete` / `rollback` while it runs. Rollback stops a running VM and, for a RAM
 * snapshot, resumes it; `start=1` starts it afterwards.
 */
const SNAPSHOT_CAPABLE = new Set(['lvmthin', 'rbd', 'zfspool']);
const RESERVED = new Set(['current', 'pending']);
/** Keys a snapshot does not carry: its own bookkeeping and what the lock/pending mechanisms own. */
const NOT_SNAPSHOTTED = new Set(['lock', 'parent', 'snapstate', 'vmstate']);

const vmPerm =
  (privs: string[], any = false) =>
  ({ identity, params }: ApiRequest, sim: SimContext) =>
    sim.perms.check(identity, `/vms/${params.str('vmid')}`, privs, any);

function snapshotsOf(vm: VmState): Map<string, SnapshotState> {
  vm.snapshots ??= new Map();
  return vm.snapshots;
}

/** Runs a snapshot worker step under the config flock with `lock` set, clearing it when done. */
async function withSnapshotLock(sim: SimContext, node: string, vmid: number, lock: string, body: (vm: VmState) => Promise<void>): Promise<void> {
  const release = await sim.flocks.acquire(node, vmid, 'exclusive', sim.timing.flockTimeoutMs);
  let vm: VmState;
  try {
    const found = sim.cluster.vmOnNode(node, vmid);
    if (!found) throw new Error(configMissingText(node, vmid));
    if (found.config.lock !== undefined) throw new Error(`VM is locked (${found.config.lock})`);
    vm = found;
    vm.config.lock = lock;
  } finally {
    release();
  }
  try {
    await body(vm);
  } finally {
    if (vm.config.lock === lock) delete vm.config.lock;
  }
}

const list: Route = {
  method: 'GET',
  path: '/nodes/{node}/qemu/{vmid}/snapshot',
  permission: vmPerm(['VM.Audit']),
  handle: ({ params }, sim) => {
    const vm = loadVm(sim, params.req('node'), Number(params.req('vmid')));
    const entries = [...snapshotsOf(vm).values()].map((s) => ({
      name: s.name,
      snaptime: s.snaptime,
      vmstate: s.vmstate ? 1 : 0,
      description: s.description ?? '',
      ...(s.parent ? { parent: s.parent } : {}),
    }));
    const current = { name: 'current', digest: digestOf(vm), running: vm.run ? 1 : 0, description: 'You are here!', ...(vm.config.parent ? { parent: vm.config.parent } : {}) };
    return [...entries, current];
  },
};

const create: Route = {
  method: 'POST',
  path: '/nodes/{node}/qemu/{vmid}/snapshot',
  permission: vmPerm(['VM.Snapshot']),
  handle: (req, sim) => {
    const node = req.params.req('node');
    const vmid = Number(req.params.req('vmid'));
    const snapname = req.params.req('snapname');
    if (RESERVED.has(snapname)) throw pveDie(`unable to use snapshot name '${snapname}' (reserved name)`);
    loadVm(sim, node, vmid);
    const vmstate = req.params.bool('vmstate') ?? false;
    return sim.tasks.start({
      node,
      type: 'qmsnapshot',
      id: String(vmid),
      identity: req.identity,
      worker: async (ctx) => {
        const vm = sim.cluster.vmOnNode(node, vmid);
        if (!vm) throw new Error(configMissingText(node, vmid));
        if (snapshotsOf(vm).has(snapname)) throw new Error(`snapshot name '${snapname}' already used`);
        if (vm.config.template === '1') throw new Error("you can't take a snapshot if it's a template");
        await withSnapshotLock(sim, node, vmid, 'snapshot', async (locked) => {
          for (const d of drivesOf(locked)) {
            if (d.cdrom) continue;
            const plugin = sim.cluster.storages.get(d.storage)?.type ?? '';
            if (!SNAPSHOT_CAPABLE.has(plugin)) throw new Error('snapshot feature is not available');
          }
          ctx.log(`snapshotting '${snapname}'`);
          await sleep(sim.timing.snapshotMs);
          ctx.failIfInjected();
          const config: VmConfig = {};
          for (const [k, v] of Object.entries(locked.config)) if (!NOT_SNAPSHOTTED.has(k)) config[k] = v;
          snapshotsOf(locked).set(snapname, {
            name: snapname,
            snaptime: Math.floor(Date.now() / 1000),
            description: req.params.str('description'),
            vmstate: vmstate && locked.run !== undefined,
            parent: locked.config.parent,
            config,
            running: locked.run !== undefined,
          });
          locked.config.parent = snapname;
        });
      },
    }).upid;
  },
};

const get: Route = {
  method: 'GET',
  path: '/nodes/{node}/qemu/{vmid}/snapshot/{snapname}',
  permission: vmPerm(['VM.Audit']),
  handle: ({ params }, sim) => {
    const vm = loadVm(sim, params.req('node'), Number(params.req('vmid')));
    const snapname = params.req('snapname');
    if (!snapshotsOf(vm).has(snapname)) throw pveDie(`snapshot '${snapname}' does not exist`);
    return [{ subdir: 'rollback' }, { subdir: 'config' }];
  },
};

const remove: Route = {
  method: 'DELETE',
  path: '/nodes/{node}/qemu/{vmid}/snapshot/{snapname}',
  permission: vmPerm(['VM.Snapshot']),
  handle: (req, sim) => {
    const node = req.params.req('node');
    const vmid = Number(req.params.req('vmid'));
    const snapname = req.params.req('snapname');
    loadVm(sim, node, vmid);
    return sim.tasks.start({
      node,
      type: 'qmdelsnapshot',
      id: String(vmid),
      identity: req.identity,
      worker: async (ctx) => {
        const vm = sim.cluster.vmOnNode(node, vmid);
        if (!vm) throw new Error(configMissingText(node, vmid));
        if (!snapshotsOf(vm).has(snapname)) throw new Error(`snapshot '${snapname}' does not exist`);
        await withSnapshotLock(sim, node, vmid, 'snapshot-delete', async (locked) => {
          await sleep(sim.timing.snapshotMs);
          ctx.failIfInjected();
          const snaps = snapshotsOf(locked);
          const gone = snaps.get(snapname)!;
          // Children of the deleted snapshot, and the current state, now hang off its parent.
          for (const s of snaps.values()) if (s.parent === snapname) s.parent = gone.parent;
          if (locked.config.parent === snapname) {
            if (gone.parent) locked.config.parent = gone.parent;
            else delete locked.config.parent;
          }
          snaps.delete(snapname);
        });
      },
    }).upid;
  },
};

const rollback: Route = {
  method: 'POST',
  path: '/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback',
  permission: vmPerm(['VM.Snapshot', 'VM.Snapshot.Rollback'], true),
  handle: (req, sim) => {
    const node = req.params.req('node');
    const vmid = Number(req.params.req('vmid'));
    const snapname = req.params.req('snapname');
    loadVm(sim, node, vmid);
    return sim.tasks.start({
      node,
      type: 'qmrollback',
      id: String(vmid),
      identity: req.identity,
      worker: async (ctx) => {
        const vm = sim.cluster.vmOnNode(node, vmid);
        if (!vm) throw new Error(configMissingText(node, vmid));
        const snap = snapshotsOf(vm).get(snapname);
        if (!snap) throw new Error(`snapshot '${snapname}' does not exist`);
        await withSnapshotLock(sim, node, vmid, 'rollback', async (locked) => {
          if (locked.run) sim.cluster.markStopped(locked, Date.now());
          await sleep(sim.timing.snapshotMs);
          ctx.failIfInjected();
          locked.config = { ...snap.config, parent: snapname, lock: 'rollback' };
          locked.pending = undefined;
          locked.pendingDelete = undefined;
        });
        if ((snap.vmstate || req.params.bool('start')) && !vm.run) {
          // A RAM snapshot resumes where it was taken; `start=1` boots the restored disks.
          sim.cluster.markRunning(vm, Date.now());
          ctx.log('VM started after rollback');
        }
      },
    }).upid;
  },
};

export const snapshotRoutes: Route[] = [list, create, get, remove, rollback];
