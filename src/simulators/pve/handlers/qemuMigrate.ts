import type { ApiRequest, Route, SimContext } from '../context';
import { assertRootOnly } from '../context';
import type { VmState } from '../cluster';
import { configNotFoundOnNodeText, paramError, pveDie } from '../errors';
import { nodeHealth } from '../nodeHealth';
import { WorkerKilled } from '../tasks';
import { sleep } from '../timing';
import { assertNotLocked, drivesOf, haManaged, loadVm, type Drive } from './qemuCommon';

/**
 * `GET/POST /nodes/{node}/qemu/{vmid}/migrate` (qemu-server `migrate_vm`, `QemuMigrate.pm`, reference §4.15).
 * Early: local target, unknown or dead target, lock, running without `online`, storages missing on the target.
 * Worker (`qmigrate`, `lock: migrate` while it runs): local cdroms refuse, linked clones on local storage
 * refuse, local disks of a running VM need `with-local-disks`; at the end the config lives on `target`, so every
 * later call must name the new node. HA-managed VMs get an `hamigrate` task that only asks the HA stack.
 */
function localDisks(sim: SimContext, vm: VmState): Drive[] {
  return drivesOf(vm).filter((d) => !d.cdrom && !d.cloudinit && !sim.cluster.storages.get(d.storage)?.shared);
}

function localCdroms(sim: SimContext, vm: VmState): Drive[] {
  return drivesOf(vm).filter((d) => d.cdrom && !d.cloudinit && !sim.cluster.storages.get(d.storage)?.shared);
}

/** Target storage of each local volume: `targetstorage` (`src:dst,...`, one id, or `1` = same id), else the same. */
function targetStorageOf(req: ApiRequest, storage: string): string {
  const spec = req.params.str('targetstorage');
  if (spec === undefined || spec === '1') return storage;
  const pairs = spec.split(',').map((p) => p.split(':'));
  if (pairs.length === 1 && pairs[0]!.length === 1) return pairs[0]![0]!;
  return pairs.find((p) => p[0] === storage)?.[1] ?? storage;
}

function assertTarget(sim: SimContext, node: string, target: string): void {
  if (target === node) throw paramError({ target: 'target is local node.' });
  if (!sim.cluster.nodes.has(target)) throw pveDie(`no such cluster node '${target}'`);
  if (!nodeHealth(sim, target).online) throw pveDie(`target node '${target}' is not online`);
}

const preconditions: Route = {
  method: 'GET',
  path: '/nodes/{node}/qemu/{vmid}/migrate',
  permission: ({ identity, params }, sim) => sim.perms.check(identity, `/vms/${params.str('vmid')}`, ['VM.Migrate']),
  handle: ({ params }, sim) => {
    const node = params.req('node');
    const vm = loadVm(sim, node, Number(params.req('vmid')));
    const target = params.str('target');
    const others = [...sim.cluster.nodes.keys()].filter((n) => n !== node && nodeHealth(sim, n).online);
    const blocked = new Map<string, string[]>();
    for (const n of others) {
      const missing = drivesOf(vm).filter((d) => {
        const s = sim.cluster.storages.get(d.storage);
        return s !== undefined && !sim.cluster.storageEnabledOn(s, n);
      });
      if (missing.length)
        blocked.set(
          n,
          missing.map((d) => d.storage),
        );
    }
    const allowed = others.filter((n) => !blocked.has(n) && (target === undefined || n === target));
    return {
      running: vm.run ? 1 : 0,
      allowed_nodes: allowed,
      not_allowed_nodes: Object.fromEntries([...blocked].map(([n, storages]) => [n, { unavailable_storages: storages }])),
      local_disks: localDisks(sim, vm).map((d) => ({ volid: d.volid, size: d.sizeBytes, drivename: d.key, is_unused: 0, is_tpmstate: 0, replicate: 1 })),
      local_resources: localCdroms(sim, vm).map((d) => d.key),
      'mapped-resources': [],
      'mapped-resource-info': {},
    };
  },
};

const migrate: Route = {
  method: 'POST',
  path: '/nodes/{node}/qemu/{vmid}/migrate',
  permission: ({ identity, params }, sim) => sim.perms.check(identity, `/vms/${params.str('vmid')}`, ['VM.Migrate']),
  handle: (req, sim) => {
    assertRootOnly(req, 'force', 'migration_type', 'migration_network');
    const node = req.params.req('node');
    const vmid = Number(req.params.req('vmid'));
    const target = req.params.req('target');
    assertTarget(sim, node, target);
    const vm = sim.cluster.vmOnNode(node, vmid);
    if (!vm) throw pveDie(configNotFoundOnNodeText(node, vmid));
    assertNotLocked(vm);
    const online = req.params.bool('online') ?? false;
    if (vm.run && !online) throw pveDie("can't migrate running VM without --online");
    for (const d of drivesOf(vm)) {
      const storage = sim.cluster.storages.get(targetStorageOf(req, d.storage));
      if (storage && !sim.cluster.storageEnabledOn(storage, target)) throw pveDie(`storage '${storage.id}' is not available on node '${target}'`);
    }

    if (haManaged(sim, vmid)) {
      return sim.tasks.start({
        node,
        type: 'hamigrate',
        id: String(vmid),
        identity: req.identity,
        worker: async (ctx) => {
          ctx.log(`Requesting HA migration for VM ${vmid} to node ${target}`);
          const timer = setTimeout(() => void runMigration(sim, req, node, vmid, target, online).catch(() => undefined), sim.timing.haActionMs);
          timer.unref();
        },
      }).upid;
    }
    return sim.tasks.start({
      node,
      type: 'qmigrate',
      id: String(vmid),
      identity: req.identity,
      worker: async (ctx) => {
        ctx.log(`starting migration of VM ${vmid} to node '${target}'`);
        await runMigration(sim, req, node, vmid, target, online, () => ctx.failIfInjected());
        ctx.log('migration finished successfully');
      },
    }).upid;
  },
};

/** The migration itself (QemuMigrate.pm phases, reduced to the checks and the outcome an orchestrator sees). */
async function runMigration(sim: SimContext, req: ApiRequest, node: string, vmid: number, target: string, online: boolean, failIfInjected?: () => void): Promise<void> {
  const release = await sim.flocks.acquire(node, vmid, 'exclusive', sim.timing.flockTimeoutMs);
  let vm: VmState | undefined;
  try {
    vm = sim.cluster.vmOnNode(node, vmid);
    if (!vm) throw new Error(configNotFoundOnNodeText(node, vmid));
    if (vm.config.lock !== undefined) throw new Error(`VM is locked (${vm.config.lock})`);
    const cdroms = localCdroms(sim, vm);
    if (cdroms.length) throw new Error(`can't migrate VM which uses local devices: ${cdroms.map((d) => d.key).join(', ')}`);
    for (const d of localDisks(sim, vm)) {
      if (d.volname.includes('/')) throw new Error(`can't migrate '${d.volid}' as it's a clone of '${d.volname.split('/')[0]}'`);
    }
    if (vm.run && online && localDisks(sim, vm).length && !req.params.bool('with-local-disks')) {
      throw new Error("can't live migrate attached local disks without with-local-disks option");
    }
    vm.config.lock = 'migrate';
  } finally {
    release();
  }
  try {
    await sleep(sim.timing.migrateMs);
    failIfInjected?.();
  } catch (err) {
    if (!(err instanceof WorkerKilled)) delete vm.config.lock;
    throw err;
  }
  for (const d of localDisks(sim, vm)) {
    const from = sim.cluster.storages.get(d.storage);
    const to = sim.cluster.storages.get(targetStorageOf(req, d.storage));
    if (from) sim.capacity.release(from, node, d.sizeBytes);
    if (to)
      await sim.capacity.allocate(to, target, d.sizeBytes, 0, d.volname).catch((err: Error) => {
        delete vm!.config.lock;
        throw new Error(`storage migration failed: ${err.message}`);
      });
  }
  delete vm.config.lock;
  vm.node = target;
}

export const migrateRoutes: Route[] = [preconditions, migrate];
