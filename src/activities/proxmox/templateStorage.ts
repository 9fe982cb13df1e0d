import type { ClusterResource } from '../../clients/pve';

/**
 * Where a template's volumes live and what cloning it therefore demands of the node the VM lands on
 * (proxmox-behaviour.md §4.8, §6.4, §6.10): a clone onto another node works only when every volume it keeps (or
 * the full clone's target storage) is shared, and a full clone needs the template's disk size free on the storage
 * it copies to. Pure functions: placement reads the cluster once and asks these.
 */

const DRIVE_KEY = /^(ide|sata|scsi|virtio|efidisk|tpmstate)\d+$/;

export interface TemplateVolume {
  /** Config key, e.g. `scsi0`. */
  key: string;
  storage: string;
  sizeBytes: number;
  /** Disks are copied by a full clone; the cloud-init drive is re-created empty; an ISO stays where it is. */
  kind: 'disk' | 'cloudinit' | 'iso';
}

/** The storage volumes a VM config references (`none`, `cdrom` and host paths are not volumes). */
export function templateVolumes(config: Record<string, unknown>): TemplateVolume[] {
  const out: TemplateVolume[] = [];
  for (const [key, value] of Object.entries(config)) {
    if (!DRIVE_KEY.test(key) || typeof value !== 'string') continue;
    const parts = value.split(',');
    const file = parts[0]?.startsWith('file=') ? parts[0].slice(5) : (parts[0] ?? '');
    const m = /^([^:/]+):(.+)$/.exec(file);
    if (!m) continue;
    const cloudinit = /cloudinit/.test(m[2]!);
    const cdrom = parts.includes('media=cdrom');
    const size = parts.find((p) => p.startsWith('size='))?.slice(5);
    out.push({ key, storage: m[1]!, sizeBytes: size ? parseSize(size) : 0, kind: cloudinit ? 'cloudinit' : cdrom ? 'iso' : 'disk' });
  }
  return out;
}

export interface ClonePlan {
  /** Bytes a full clone allocates, per storage it allocates on (empty for a linked clone). */
  spaceNeeded: Record<string, number>;
  /**
   * Storages that are not shared and that the clone keeps using: the VM can only be made on the template's node.
   * Storages the API token cannot see are left out: Proxmox judges them at clone time.
   */
  localStorages: string[];
}

/** What cloning these volumes asks of the destination, given which storages the cluster reports as shared. */
export function clonePlan(volumes: TemplateVolume[], storages: ClusterResource[], opts: { full: boolean; targetStorage?: string }): ClonePlan {
  const shared = (sid: string) => storages.find((s) => s.storage === sid)?.shared;
  const spaceNeeded: Record<string, number> = {};
  const kept = new Set<string>();
  for (const v of volumes) {
    // A full clone with a target storage moves disks and the cloud-init drive there; an ISO stays where it is.
    const destination = opts.full && opts.targetStorage && v.kind !== 'iso' ? opts.targetStorage : v.storage;
    kept.add(destination);
    if (opts.full && v.kind === 'disk') spaceNeeded[destination] = (spaceNeeded[destination] ?? 0) + v.sizeBytes;
  }
  return { spaceNeeded, localStorages: [...kept].filter((sid) => shared(sid) === false) };
}

/** The storages a clone allocates new volumes on (disks and the re-created cloud-init drive; an ISO is not copied). */
export function cloneDestinations(volumes: TemplateVolume[], opts: { full: boolean; targetStorage?: string }): string[] {
  const out = new Set<string>();
  for (const v of volumes) if (v.kind !== 'iso') out.add(opts.full && opts.targetStorage ? opts.targetStorage : v.storage);
  return [...out];
}

/** Free bytes of `storage` as seen from `node`, or undefined when the storage is not enabled there (or not visible). */
export function storageAvail(storages: ClusterResource[], storage: string, node: string): number | undefined {
  const s = storages.find((r) => r.storage === storage && r.node === node);
  if (!s || s.maxdisk === undefined) return undefined;
  return s.maxdisk - (s.disk ?? 0);
}

export function formatBytes(bytes: number): string {
  const gib = bytes / 1024 ** 3;
  return gib >= 1 ? `${gib.toFixed(gib >= 10 ? 0 : 1)} GiB` : `${Math.ceil(bytes / 1024 ** 2)} MiB`;
}

/** `4G`, `512M`, `32K`, `1T` or plain bytes, as PVE writes `size=` in a drive. */
function parseSize(size: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMGT]?)$/.exec(size);
  if (!m) return 0;
  const unit = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[m[2] as '' | 'K' | 'M' | 'G' | 'T'];
  return Math.round(Number(m[1]) * unit);
}
