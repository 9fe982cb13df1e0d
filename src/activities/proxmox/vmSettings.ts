/**
 * The property strings pveflow writes into a VM's config, built from what the clone already has so that nothing
 * Proxmox generated for it (SMBIOS UUID, MAC address) is lost.
 */

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

/** PVE property string → ordered key/value pairs (`virtio=BC:..,bridge=vmbr0` → [[virtio, BC:..], [bridge, vmbr0]]). */
export function parsePropertyString(value: string | undefined): Array<[string, string]> {
  if (!value) return [];
  return value
    .split(',')
    .filter(Boolean)
    .map((part) => {
      const i = part.indexOf('=');
      return i < 0 ? [part, ''] : [part.slice(0, i), part.slice(i + 1)];
    });
}

const joinPairs = (pairs: Array<[string, string]>) => pairs.map(([k, v]) => (v === '' ? k : `${k}=${v}`)).join(',');

export interface SmbiosMetadata {
  vmName: string;
  templateVmid: number;
  serial: string;
  org: string;
}

/**
 * SMBIOS type 1 as the seeds set it: manufacturer=pveflow, product=VM name, version=template id, serial=request
 * serial, family=client org. PVE accepts only `[A-Za-z0-9+/]+=*` there, so every value is base64 with `base64=1`;
 * the clone's UUID is kept.
 */
export function smbios1For(current: string | undefined, meta: SmbiosMetadata): string {
  const uuid = parsePropertyString(current).find(([k]) => k === 'uuid')?.[1];
  const pairs: Array<[string, string]> = [
    ...(uuid ? ([['uuid', uuid]] as Array<[string, string]>) : []),
    ['manufacturer', b64('pveflow')],
    ['product', b64(meta.vmName)],
    ['version', b64(String(meta.templateVmid))],
    ['serial', b64(meta.serial)],
    ['family', b64(meta.org)],
    ['base64', '1'],
  ];
  return joinPairs(pairs);
}

/** The first NIC on the configured bridge (and VLAN), keeping its model and MAC and any other setting. */
export function net0For(current: string | undefined, bridge: string, vlan: number | undefined): string {
  const pairs = parsePropertyString(current).filter(([k]) => k !== 'bridge' && k !== 'tag');
  if (pairs.length === 0) pairs.push(['virtio', '']);
  pairs.push(['bridge', bridge]);
  if (vlan !== undefined) pairs.push(['tag', String(vlan)]);
  return joinPairs(pairs);
}

const DISK_KEY = /^(scsi|virtio|sata|ide)\d+$/;

/** The boot disk (first in `boot: order=`, else the first disk that is not a CD-ROM) and its size in GiB. */
export function bootDisk(config: Record<string, unknown>): { key: string; sizeGiB: number } | undefined {
  const order = /order=([^,]+)/.exec(String(config.boot ?? ''))?.[1]?.split(';') ?? [];
  const keys = [...order, ...Object.keys(config).sort()].filter((k) => DISK_KEY.test(k));
  for (const key of keys) {
    const value = String(config[key] ?? '');
    if (!value || value.includes('media=cdrom') || value.includes('cloudinit')) continue;
    const size = /(?:^|,)size=(\d+(?:\.\d+)?)([KMGT]?)/.exec(value);
    if (!size) continue;
    const n = Number(size[1]);
    const unit = { K: 1 / 1024 ** 2, M: 1 / 1024, G: 1, T: 1024, '': 1 / 1024 ** 3 }[size[2] as 'K' | 'M' | 'G' | 'T' | ''];
    return { key, sizeGiB: n * unit };
  }
  return undefined;
}
