import type { ApiRequest, Route, SimContext } from '../context';
import { DRIVE_KEY_RE, newUuid, type VmConfig, type VmState } from '../cluster';
import { existsSync } from 'node:fs';
import { lockTimeoutText, paramError, permissionError, pveDie } from '../errors';
import { formatDiskSize, inspectImage } from '../storageFiles';
import { fileVolumePath } from './storage';
import { printNet } from '../nic';
import { joinPropertyString, splitPropertyString } from '../propertyString';
import { WorkerKilled } from '../tasks';
import { sleep } from '../timing';
import { assertConfigKeyAllowed, assertSshKeys, normalizeTags } from './qemuConfig';
import { allocateVolume, drivesOf, haManaged, loadVm } from './qemuCommon';
import { startInBackground } from './qemuPower';
import { vmCpus, vmMaxdisk, vmMaxmem } from './views';

/**
 * `POST /nodes/{node}/qemu` (qemu-server `create_vm`, reference §4.7), the node's VM list and a VM's directory
 * index. Create writes its placeholder config (`lock: create`) under a 5 s flock **before** answering, so the
 * nextid window closes when the POST returns; the `qmcreate` worker allocates the disks, writes the config and
 * joins the pool. A failed worker frees what it allocated and removes the config: the VMID is free again.
 * `start=1` starts the VM in a separate `qmstart` task whose UPID the client never sees.
 */
const NOT_CONFIG = new Set(['node', 'vmid', 'storage', 'pool', 'start', 'ha-managed', 'archive', 'force', 'unique', 'live-restore', 'bwlimit', 'import-working-storage']);

interface NewVolume {
  key: string;
  storage: string;
  gib: number;
  cloudinit: boolean;
  /** `import-from=<volid>`: the disk is a copy of that volume, as big as its image (size `0` in the request). */
  importFrom?: string;
}

/** New volumes in a create request: `<storage>:<GiB>`, `<storage>:0,import-from=<volid>` and `<storage>:cloudinit`. */
function newVolumes(config: VmConfig, defaultStorage: string | undefined): NewVolume[] {
  const out: NewVolume[] = [];
  for (const [key, value] of Object.entries(config)) {
    if (!DRIVE_KEY_RE.test(key)) continue;
    const options = splitPropertyString(value, 'file');
    const file = options.file ?? '';
    const sized = /^(?:([^/:\s]+):)?(\d+(?:\.\d+)?)$/.exec(file);
    const cloudinit = /^([^:]+):cloudinit$/.exec(file);
    const importFrom = options['import-from'];
    // qemu-server `$check_drive_param`, before anything else happens.
    if (importFrom !== undefined && (!sized || Number(sized[2]) !== 0)) {
      throw paramError({ [key]: "'import-from' requires special syntax - use <storage ID>:0,import-from=<source>" });
    }
    if (sized) {
      const storage = sized[1] ?? defaultStorage;
      if (!storage) throw pveDie(`no storage ID specified (and no default storage)`);
      out.push({ key, storage, gib: Number(sized[2]), cloudinit: false, ...(importFrom !== undefined ? { importFrom } : {}) });
    } else if (cloudinit) {
      out.push({ key, storage: cloudinit[1]!, gib: 0, cloudinit: true });
    }
  }
  return out;
}

function checkCreatePermissions(req: ApiRequest, sim: SimContext): void {
  const { identity, params } = req;
  const vmid = params.str('vmid');
  const pool = params.str('pool');
  if (pool !== undefined && !sim.cluster.pools.has(pool)) throw permissionError(`pool '${pool}' does not exist`);
  // check_vm_create_*: on the new VM's path, or on the pool it will join.
  const vmPath = `/vms/${vmid}`;
  const has = (privs: string[]) => sim.perms.has(identity, vmPath, privs) || (pool !== undefined && sim.perms.has(identity, `/pool/${pool}`, privs));
  if (!has(['VM.Allocate'])) throw permissionError(pool !== undefined ? undefined : `${vmPath}, VM.Allocate`);
  for (const [key, value] of Object.entries(params.values)) {
    if (NOT_CONFIG.has(key)) continue;
    assertConfigKeyAllowed(req, sim, key, value, vmPath, has);
  }
}

const create: Route = {
  method: 'POST',
  path: '/nodes/{node}/qemu',
  permission: checkCreatePermissions,
  handle: async (req, sim) => {
    const { params, identity } = req;
    const node = params.req('node');
    const vmid = Number(params.req('vmid'));
    if (params.has('archive')) throw pveDie('restore from an archive is not simulated');
    const config: VmConfig = {};
    for (const [k, v] of Object.entries(params.values)) if (!NOT_CONFIG.has(k)) config[k] = v;
    if (config.sshkeys !== undefined) assertSshKeys(config.sshkeys);
    if (config.tags !== undefined) config.tags = normalizeTags(config.tags);
    const defaultStorage = params.str('storage');
    if (defaultStorage !== undefined && !sim.cluster.storages.has(defaultStorage)) throw pveDie(`storage '${defaultStorage}' does not exist`);
    const volumes = newVolumes(config, defaultStorage);
    for (const v of volumes) {
      const storage = sim.cluster.storages.get(v.storage);
      if (!storage) throw pveDie(`storage '${v.storage}' does not exist`);
      if (!sim.cluster.storageEnabledOn(storage, node)) throw pveDie(`storage '${v.storage}' is not available on node '${node}'`);
      sim.perms.check(identity, `/storage/${v.storage}`, ['Datastore.AllocateSpace']);
      if (v.importFrom !== undefined) checkImportSource(req, sim, v.key, v.importFrom);
    }
    for (const [k, v] of Object.entries(config)) {
      const bridge = /^net\d+$/.test(k) ? splitPropertyString(v, 'model').bridge : undefined;
      if (bridge) sim.perms.check(identity, `/sdn/zones/localnetwork/${bridge}`, ['SDN.Use']);
    }

    // create_and_lock_config: a node-local flock (5 s), then the placeholder — all before the UPID is returned.
    let release: () => void;
    try {
      release = await sim.flocks.acquire(node, vmid, 'exclusive', sim.timing.flockTimeoutMs / 2);
    } catch {
      throw pveDie(`unable to create VM ${vmid} - ${lockTimeoutText(vmid)}`);
    }
    try {
      const existing = sim.cluster.vms.get(vmid);
      if (existing) throw pveDie(`unable to create VM ${vmid} - VM ${vmid} already exists on node '${existing.node}'`);
      sim.cluster.addVm({ vmid, node, config: { lock: 'create' }, statusLog: [{ at: Date.now(), status: 'stopped' }] });
    } finally {
      release();
    }

    return sim.tasks.start({
      node,
      type: 'qmcreate',
      id: String(vmid),
      identity,
      worker: async (ctx) => {
        const vm = sim.cluster.vms.get(vmid)!;
        const allocated: { storage: string; bytes: number }[] = [];
        let realDiskImported = false;
        try {
          for (const v of volumes) {
            const volname = v.cloudinit ? `vm-${vmid}-cloudinit` : `vm-${vmid}-disk-${allocated.filter((a) => a.bytes > 0).length}`;
            const source = v.importFrom !== undefined ? importSource(sim, node, v.importFrom) : undefined;
            const bytes = source ? source.bytes : Math.floor(v.gib * 1024 ** 3);
            await allocateVolume(sim, v.storage, node, bytes, volname);
            allocated.push({ storage: v.storage, bytes });
            const { 'import-from': _from, ...opts } = splitPropertyString(config[v.key]!, 'file');
            if (source) {
              const total = renderBytes(bytes);
              ctx.log(`transferred 0.0 B of ${total} (0.00%)`);
              // Real-guest mode: the VM's disk is the image itself (the first disk is the one a real guest boots).
              if (sim.realGuests && !realDiskImported) {
                await sim.realGuests.importDisk(vmid, source.path, source.format);
                realDiskImported = true;
              }
              ctx.log(`transferred ${total} of ${total} (100.00%)`);
            }
            config[v.key] = v.cloudinit
              ? joinPropertyString({ ...opts, file: `${v.storage}:${volname}`, media: 'cdrom' }, 'file')
              : joinPropertyString({ ...opts, file: `${v.storage}:${volname}`, size: source ? formatDiskSize(bytes) : `${v.gib}G` }, 'file');
            ctx.log(`${v.key}: successfully created disk '${config[v.key]}'`);
          }
          await sleep(sim.timing.createMs);
          ctx.failIfInjected();
        } catch (err) {
          if (err instanceof WorkerKilled) throw err;
          for (const a of allocated) sim.capacity.release(sim.cluster.storages.get(a.storage)!, node, a.bytes);
          if (realDiskImported) await sim.realGuests?.destroy(vmid);
          sim.cluster.removeVm(vmid);
          throw new Error(`unable to create VM ${vmid} - ${err instanceof Error ? err.message : String(err)}`, { cause: err });
        }
        vm.config = withCreateDefaults(config);
        vm.pool = params.str('pool');
        if (params.bool('start')) {
          ctx.log(`starting VM ${vmid} in its own task`);
          startInBackground(sim, node, vmid, identity);
        }
      },
    }).upid;
  },
};

/**
 * qemu-server's `check_storage_access` for `import-from` with a volume id: an `import` (or `images`) volume, which
 * the caller may read (`check_volume_access`: `Datastore.AllocateSpace` or `Datastore.Audit` on its storage); an
 * absolute path only for root@pam.
 */
function checkImportSource(req: ApiRequest, sim: SimContext, key: string, source: string): void {
  const m = /^([a-zA-Z][a-zA-Z0-9\-_.]*[a-zA-Z0-9]):(.+)$/.exec(source);
  if (!m) {
    if (req.identity.userid !== 'root@pam' || req.identity.tokenName) throw permissionError('Only root can pass arbitrary filesystem paths.');
    throw pveDie('import-from with a file system path is not simulated');
  }
  const vtype = /^(import|iso|vztmpl|snippets|backup)\//.exec(m[2]!)?.[1] ?? 'images';
  if (vtype !== 'images' && vtype !== 'import') throw paramError({ [key]: `${source} has wrong type '${vtype}' - needs to be 'images' or 'import'` });
  if (!sim.cluster.storages.has(m[1]!)) throw pveDie(`storage '${m[1]}' does not exist`);
  sim.perms.check(req.identity, `/storage/${m[1]}`, ['Datastore.AllocateSpace', 'Datastore.Audit'], true);
}

/**
 * The image an `import-from` copies, checked as an untrusted image (`file_size_info(…, 1)`): its virtual size
 * (rounded up to KiB, as `vdisk_alloc` takes it) for an `import` file; the disk's size for another VM's volume.
 */
function importSource(sim: SimContext, node: string, source: string): { bytes: number; path: string; format: string } {
  const sid = source.slice(0, source.indexOf(':'));
  const volname = source.slice(source.indexOf(':') + 1);
  const file = fileVolumePath(sim, sid, volname, node);
  if (!file) {
    const owner = [...sim.cluster.vms.values()].flatMap((vm) => drivesOf(vm)).find((d) => d.volid === source && !d.cdrom);
    if (!owner) throw new Error(`cannot import from '${source}' - could not get size of ${source}`);
    throw new Error(`cannot import from '${source}' - copying another VM's disk is not simulated`);
  }
  const format = /\.(qcow2|raw|vmdk|ova|ovf)$/i.exec(file.name)?.[1]?.toLowerCase() ?? 'raw';
  if (format === 'ova' || format === 'ovf') throw new Error(`importing from '${format}' files is not simulated`);
  if (!existsSync(file.path)) throw new Error(`failed to stat '${file.pvePath}'`);
  let info;
  try {
    info = inspectImage(file.path, format);
  } catch (err) {
    throw new Error((err as Error).message.replaceAll(file.path, file.pvePath), { cause: err });
  }
  if (info.dataFile) throw new Error(`${file.pvePath}: 'data-file' references are not allowed!`);
  if (info.backingFile) throw new Error(`backing file not allowed for untrusted image '${file.pvePath}'!`);
  return { bytes: Math.ceil(info.virtualSize / 1024) * 1024, path: file.path, format };
}

/** qemu-server's `render_bytes` in its transfer lines: `2.0 GiB`. */
function renderBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  return `${value.toFixed(1)} ${units[i]}`;
}

/** What the create worker adds: identity (SMBIOS uuid, vmgenid, MACs), `meta`, a boot order. */
function withCreateDefaults(input: VmConfig): VmConfig {
  const config: VmConfig = { ...input };
  for (const key of Object.keys(config)) if (/^net\d+$/.test(key)) config[key] = printNet(config[key]!);
  config.smbios1 ??= `uuid=${newUuid()}`;
  config.vmgenid ??= newUuid();
  config.meta ??= `creation-qemu=9.0.2,ctime=${Math.floor(Date.now() / 1000)}`;
  if (config.boot === undefined) {
    const order = Object.keys(config).filter((k) => DRIVE_KEY_RE.test(k) || /^net\d+$/.test(k));
    if (order.length) config.boot = `order=${order.join(';')}`;
  }
  return config;
}

function vmListEntry(sim: SimContext, vm: VmState): Record<string, unknown> {
  const run = vm.run;
  return {
    vmid: vm.vmid,
    name: vm.config.name ?? `VM ${vm.vmid}`,
    status: run ? 'running' : 'stopped',
    cpus: vmCpus(vm),
    maxmem: vmMaxmem(vm),
    maxdisk: vmMaxdisk(vm),
    uptime: run ? Math.floor((Date.now() - run.startedAt) / 1000) : 0,
    cpu: run ? 0.02 : 0,
    mem: run ? Math.floor(vmMaxmem(vm) * 0.3) : 0,
    disk: 0,
    netin: 0,
    netout: 0,
    diskread: 0,
    diskwrite: 0,
    ...(run ? { pid: run.pid, qmpstatus: run.paused ? 'paused' : 'running' } : {}),
    ...(vm.config.tags !== undefined ? { tags: vm.config.tags } : {}),
    ...(vm.config.lock !== undefined ? { lock: vm.config.lock } : {}),
    ...(vm.config.template === '1' ? { template: 1 } : {}),
    ...(haManaged(sim, vm.vmid) ? { hastate: sim.cluster.ha.get(vm.vmid)!.state } : {}),
  };
}

const list: Route = {
  method: 'GET',
  path: '/nodes/{node}/qemu',
  handle: ({ identity, params }, sim) => {
    const node = params.req('node');
    return [...sim.cluster.vms.values()].filter((vm) => vm.node === node && sim.perms.has(identity, `/vms/${vm.vmid}`, ['VM.Audit'])).map((vm) => vmListEntry(sim, vm));
  },
};

const SUBDIRS = [
  'config',
  'pending',
  'cloudinit',
  'status',
  'unlink',
  'vncproxy',
  'termproxy',
  'migrate',
  'resize',
  'move',
  'rrd',
  'rrddata',
  'monitor',
  'agent',
  'snapshot',
  'spiceproxy',
  'sendkey',
  'firewall',
  'mtunnel',
  'remote_migrate',
];

const index: Route = {
  method: 'GET',
  path: '/nodes/{node}/qemu/{vmid}',
  handle: ({ params }, sim) => {
    loadVm(sim, params.req('node'), Number(params.req('vmid')));
    return SUBDIRS.map((subdir) => ({ subdir }));
  },
};

export const createRoutes: Route[] = [create, list, index];
