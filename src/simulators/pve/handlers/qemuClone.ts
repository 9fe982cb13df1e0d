import type { Route } from '../context';
import { configNotFoundOnNodeText, paramError, permissionError, pveDie } from '../errors';
import { newUuid, randomMac, type VmConfig, type VmState } from '../cluster';
import { joinPropertyString, splitPropertyString } from '../propertyString';
import { WorkerKilled } from '../tasks';
import { sleep } from '../timing';
import { allocateVolume, assertNotLocked, bridgesOf, drivesOf, type Drive } from './qemuCommon';

/**
 * `POST /nodes/{node}/qemu/{vmid}/clone` (qemu-server `API2/Qemu.pm clone_vm`, reference §4.8): early checks
 * answer as HTTP errors; the worker takes the source flock (shared when stopped) and the target flock, writes the
 * `lock: clone` placeholder, copies the disks, and only at its end moves the config to `target` and into `pool`.
 */
const LINKED_CAPABLE = new Set(['lvmthin', 'rbd', 'zfspool']);
const KEYS_NOT_CLONED = new Set(['template', 'lock', 'parent', 'snapstate', 'vmstate', 'pending', 'snapshots']);

export const cloneRoute: Route = {
  method: 'POST',
  path: '/nodes/{node}/qemu/{vmid}/clone',
  permission: ({ identity, params }, sim) => {
    sim.perms.check(identity, `/vms/${params.str('vmid')}`, ['VM.Clone']);
    const pool = params.str('pool');
    if (pool !== undefined && !sim.cluster.pools.has(pool)) throw permissionError(`pool '${pool}' does not exist`);
    const onNewid = sim.perms.has(identity, `/vms/${params.str('newid')}`, ['VM.Allocate']);
    const onPool = pool !== undefined && sim.perms.has(identity, `/pool/${pool}`, ['VM.Allocate']);
    if (!onNewid && !onPool) throw permissionError();
  },
  handle: ({ identity, params }, sim) => {
    const node = params.req('node');
    const vmid = Number(params.req('vmid'));
    const newid = Number(params.req('newid'));
    const source = sim.cluster.vmOnNode(node, vmid);
    if (!source) throw pveDie(configNotFoundOnNodeText(node, vmid));

    let target = params.str('target');
    if (target === node) target = undefined;
    if (target !== undefined && !sim.cluster.nodes.has(target)) throw pveDie(`no such cluster node '${target}'`);

    const storageId = params.str('storage');
    const storage = storageId !== undefined ? sim.cluster.storages.get(storageId) : undefined;
    if (storageId !== undefined) {
      if (!storage) throw pveDie(`storage '${storageId}' does not exist`);
      if (!storage.content.includes('images')) throw paramError({ storage: `storage '${storageId}' does not support vm images` });
    }

    const isTemplate = source.config.template === '1';
    const full = params.bool('full') ?? !isTemplate;
    if (!full && storageId !== undefined) throw pveDie("parameter 'storage' not allowed for linked clones");
    if (!full && params.has('format')) throw pveDie("parameter 'format' not allowed for linked clones");

    const snapname = params.str('snapname');
    const snapshot = snapname !== undefined ? source.snapshots?.get(snapname) : undefined;
    if (snapname !== undefined && !snapshot) throw pveDie(`snapshot '${snapname}' does not exist`);
    // Cloning a snapshot copies the config (and the volumes) as they were when it was taken.
    const sourceConfig = snapshot ? snapshot.config : source.config;
    const drives = drivesOf({ ...source, config: sourceConfig });
    if (target !== undefined) {
      if (storage) {
        if (!sim.cluster.storageEnabledOn(storage, target)) throw pveDie(`storage '${storage.id}' is not available on node '${target}'`);
        if (!storage.shared) throw pveDie(`can't clone to non-shared storage '${storage.id}'`);
      } else if (drives.some((d) => !sim.cluster.storages.get(d.storage)?.shared)) {
        throw pveDie(`can't clone VM to node '${target}' (VM uses local storage)`);
      }
    }
    assertNotLocked(source);
    if (!full) {
      for (const d of drives) {
        if (d.cdrom) continue;
        const plugin = sim.cluster.storages.get(d.storage)?.type ?? '';
        if ((!d.volname.startsWith('base-') && !snapshot) || !LINKED_CAPABLE.has(plugin)) {
          throw pveDie(`Linked clone feature is not supported for '${d.volid}' (${d.key})`);
        }
      }
    }
    if (sim.cluster.vmOnNode(node, newid)) throw pveDie(`unable to create VM ${newid}: config file already exists`);

    for (const d of drives) {
      if (d.cdrom && !d.cloudinit) continue;
      const sid = full && storage ? storage.id : d.storage;
      sim.perms.check(identity, `/storage/${sid}`, ['Datastore.AllocateSpace']);
    }
    for (const bridge of bridgesOf(source)) sim.perms.check(identity, `/sdn/zones/localnetwork/${bridge}`, ['SDN.Use']);

    const task = sim.tasks.start({
      node,
      type: 'qmclone',
      id: String(vmid),
      identity,
      worker: async (ctx) => {
        const shortLock = sim.timing.flockTimeoutMs / 10;
        const releaseSource = await sim.flocks.acquire(node, vmid, source.run ? 'exclusive' : 'shared', shortLock);
        try {
          const releaseTarget = await sim.flocks.acquire(node, newid, 'exclusive', shortLock);
          try {
            const existing = sim.cluster.vms.get(newid);
            if (existing?.node === node) throw new Error(`unable to create VM ${newid}: config file already exists`);
            if (existing) {
              throw new Error(`close (rename) atomic file '/etc/pve/nodes/${node}/qemu-server/${newid}.conf' failed: File exists`);
            }
            const placeholder: VmState = { vmid: newid, node, config: { lock: 'clone' }, statusLog: [] };
            sim.cluster.addVm(placeholder);
            const allocated: { sid: string; bytes: number }[] = [];
            try {
              // Every new volume takes the storage lock; a full copy also needs the space (reference §4.8).
              let index = 0;
              for (const d of drives) {
                if (d.cdrom) continue;
                const sid = full && storage ? storage.id : d.storage;
                const bytes = full && !d.cloudinit ? d.sizeBytes : 0;
                try {
                  await allocateVolume(sim, sid, node, bytes, d.cloudinit ? `vm-${newid}-cloudinit` : `vm-${newid}-disk-${index++}`);
                } catch (err) {
                  throw new Error(`clone failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
                }
                allocated.push({ sid, bytes });
              }
              let copyMs = 0;
              const newConfig: VmConfig = {};
              let diskIndex = 0;
              for (const [key, value] of Object.entries(sourceConfig)) {
                if (KEYS_NOT_CLONED.has(key) || /^unused\d+$/.test(key)) continue;
                const drive = drives.find((d) => d.key === key);
                newConfig[key] = drive ? cloneDrive(drive) : value;
              }
              function cloneDrive(d: Drive): string {
                if (d.cdrom && !d.cloudinit) return joinPropertyString(d.options, 'file');
                const sid = full && storage ? storage.id : d.storage;
                let file: string;
                if (d.cloudinit) {
                  file = `${sid}:vm-${newid}-cloudinit`;
                } else if (full) {
                  ctx.log(`create full clone of drive ${d.key} (${d.volid})`);
                  file = `${sid}:vm-${newid}-disk-${diskIndex++}`;
                  copyMs += (d.sizeBytes / 1024 ** 3) * sim.timing.fullCloneMsPerGiB;
                } else {
                  ctx.log(`create linked clone of drive ${d.key} (${d.volid})`);
                  file = `${d.volid}/vm-${newid}-disk-${diskIndex++}`;
                }
                return joinPropertyString({ ...d.options, file }, 'file');
              }
              await sleep(full ? copyMs : sim.timing.linkedCloneMs);
              if (full) {
                const gib = drives.filter((d) => !d.cdrom).reduce((sum, d) => sum + d.sizeBytes, 0) / 1024 ** 3;
                ctx.log(`transferred ${gib.toFixed(1)} GiB of ${gib.toFixed(1)} GiB (100.00%)`);
              }
              ctx.failIfInjected();
              if (full && sim.realGuests) await sim.realGuests.fullCloneDisk(vmid, newid);
              finishClone(newConfig, {
                name: params.str('name') ?? `Copy-of-VM-${sourceConfig.name ?? vmid}`,
                description: params.str('description'),
              });
              placeholder.config = newConfig;
              placeholder.node = target ?? node;
              placeholder.pool = params.str('pool');
              placeholder.statusLog = [{ at: Date.now(), status: 'stopped' }];
            } catch (err) {
              // A killed worker cleans nothing up: its `lock: clone` placeholder stays (reference §4.8).
              if (err instanceof WorkerKilled) throw err;
              for (const a of allocated) sim.capacity.release(sim.cluster.storages.get(a.sid)!, node, a.bytes);
              sim.cluster.removeVm(newid);
              throw err;
            }
          } finally {
            releaseTarget();
          }
        } finally {
          releaseSource();
        }
      },
    });
    return task.upid;
  },
};

/** What the clone worker changes beyond the disks: new identity (MACs, SMBIOS uuid, vmgenid), name, description. */
function finishClone(config: VmConfig, opts: { name: string; description?: string }): void {
  config.name = opts.name;
  if (opts.description !== undefined) config.description = opts.description;
  for (const key of Object.keys(config)) {
    if (/^net\d+$/.test(key)) {
      const nic = splitPropertyString(config[key]!, 'model');
      const model = nic.model ?? Object.keys(nic)[0] ?? 'virtio';
      const parts = config[key]!.split(',').filter((p) => !p.startsWith(`${model}=`) && !p.startsWith('macaddr='));
      config[key] = [`${model}=${randomMac()}`, ...parts.filter((p) => p.includes('='))].join(',');
    }
  }
  if (config.smbios1 !== undefined) {
    const smbios = config.smbios1.split(',').filter((p) => !p.startsWith('uuid='));
    config.smbios1 = [`uuid=${newUuid()}`, ...smbios].join(',');
  } else {
    config.smbios1 = `uuid=${newUuid()}`;
  }
  if (config.vmgenid !== undefined) config.vmgenid = newUuid();
}
