import type { SimContext } from '../context';
import { configMissingText, pveDie } from '../errors';
import type { VmState } from '../cluster';
import { DRIVE_KEY_RE, parseSize } from '../cluster';
import { splitPropertyString } from '../propertyString';

/** Loads a VM's config from `{node}` or dies like `PVE::QemuConfig->load_config`. */
export function loadVm(sim: SimContext, node: string, vmid: number): VmState {
  const vm = sim.cluster.vmOnNode(node, vmid);
  if (!vm) throw pveDie(configMissingText(node, vmid));
  return vm;
}

export function assertNotLocked(vm: VmState): void {
  if (vm.config.lock !== undefined) throw pveDie(`VM is locked (${vm.config.lock})`);
}

export interface Drive {
  key: string;
  volid: string;
  storage: string;
  volname: string;
  cdrom: boolean;
  cloudinit: boolean;
  sizeBytes: number;
  options: Record<string, string>;
}

/** The volumes a config references (disks, cloud-init drive, ISO cdroms), as PVE's `foreach_volume` sees them. */
export function drivesOf(vm: VmState): Drive[] {
  const out: Drive[] = [];
  for (const [key, value] of Object.entries(vm.config)) {
    if (!DRIVE_KEY_RE.test(key)) continue;
    const options = splitPropertyString(value, 'file');
    const volid = options.file ?? '';
    const m = /^([^:]+):(.+)$/.exec(volid);
    if (!m) continue; // `none`, `cdrom`, absolute paths: no storage volume
    out.push({
      key,
      volid,
      storage: m[1]!,
      volname: m[2]!,
      cdrom: options.media === 'cdrom',
      cloudinit: /cloudinit/.test(m[2]!),
      sizeBytes: parseSize(options.size),
      options,
    });
  }
  return out;
}

export function bridgesOf(vm: VmState): string[] {
  return Object.entries(vm.config)
    .filter(([k]) => /^net\d+$/.test(k))
    .map(([, v]) => splitPropertyString(v, 'model').bridge)
    .filter((b): b is string => b !== undefined);
}

/** Whether the VM is HA-managed (has a resource in `ha/resources.cfg`). */
export function haManaged(sim: SimContext, vmid: number): boolean {
  return sim.cluster.ha.has(vmid);
}

/**
 * Allocates a new volume of `bytes` on `storageId` for a task on `node`; the storage lock waits as long as a
 * config flock does (10 s in PVE). Errors carry the plugin's text; callers prefix them as PVE does (`clone failed: `).
 */
export async function allocateVolume(sim: SimContext, storageId: string, node: string, bytes: number, volname: string): Promise<void> {
  const storage = sim.cluster.storages.get(storageId);
  if (!storage) throw new Error(`storage '${storageId}' does not exist`);
  await sim.capacity.allocate(storage, node, bytes, sim.timing.flockTimeoutMs, volname, sim.timing.storageAllocMs);
}

/** Gives back the space of the VM's own disks (linked clones own only their delta, counted as nothing). */
export function releaseVolumes(sim: SimContext, vm: VmState): void {
  for (const d of drivesOf(vm)) {
    if (d.cdrom || d.volname.includes('/')) continue;
    const storage = sim.cluster.storages.get(d.storage);
    if (storage) sim.capacity.release(storage, vm.node, d.sizeBytes);
  }
}

/** Runs `body` under the VM's config flock inside a worker; a timeout fails the task with PVE's `can't lock file` text. */
export async function withFlock<T>(sim: SimContext, node: string, vmid: number, body: () => Promise<T> | T): Promise<T> {
  const release = await sim.flocks.acquire(node, vmid, 'exclusive', sim.timing.flockTimeoutMs);
  try {
    return await body();
  } finally {
    release();
  }
}
