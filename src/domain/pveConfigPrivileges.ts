/**
 * Which privilege Proxmox VE checks for each VM config key on create and config update (qemu-server `API2/Qemu.pm`
 * `check_vm_modify_config_perm`; proxmox-behaviour.md §4.9.1). One table for the simulator, which enforces it, and
 * for pveflow's own list of what its token needs (src/domain/pveflowPrivileges.ts), which derives from it.
 */

export type ConfigKeyPrivilege =
  /** Every one of these, on the VM. */
  | { all: readonly string[] }
  /** Any one of these, on the VM. */
  | { any: readonly string[] }
  /** Nobody but `root@pam` (a token of root is not root): `500 only root can set '<key>' config`. */
  | { rootOnly: true };

const GROUPS: ReadonlyArray<readonly [RegExp, ConfigKeyPrivilege]> = [
  [/^(cores|cpu|cpulimit|cpuunits|numa|smp|sockets|vcpus|numa\d+)$/, { all: ['VM.Config.CPU'] }],
  [/^(memory|balloon|shares)$/, { all: ['VM.Config.Memory'] }],
  [/^(acpi|hotplug|kvm|machine|scsihw|smbios1|tablet|vga|watchdog|audio0)$/, { all: ['VM.Config.HWType'] }],
  [/^(agent|autostart|bios|description|keyboard|localtime|migrate_downtime|migrate_speed|name|onboot|ostype|protection|reboot|startdate|startup|tdf|template)$/, { all: ['VM.Config.Options'] }],
  [/^freeze$/, { all: ['VM.PowerMgmt'] }],
  [/^(boot|bootdisk|vmstatestorage)$/, { all: ['VM.Config.Disk'] }],
  [/^net\d+$/, { all: ['VM.Config.Network'] }],
  [/^(cicustom|cipassword|citype|ciuser|ciupgrade|nameserver|searchdomain|sshkeys|ipconfig\d+)$/, { any: ['VM.Config.Cloudinit', 'VM.Config.Network'] }],
  [/^vmstate$/, { all: ['VM.Config.Disk', 'VM.PowerMgmt'] }],
  // Checked elsewhere and by value in PVE; what follows is what that check asks of the values pveflow and the tests use.
  [/^tags$/, { all: ['VM.Config.Options'] }],
  [/^unused\d+$/, { all: ['VM.Config.Disk'] }],
];

const DRIVE = /^(ide|sata|scsi|virtio|efidisk|tpmstate)\d+$/;

/**
 * The privilege `key` (set to `value`, or deleted when `value` is undefined) needs. Drives, serial ports, USB and PCI
 * devices depend on the value: a CD-ROM needs VM.Config.CDROM, a disk VM.Config.Disk (plus space on its storage,
 * checked with the storage), a serial socket or a mapped USB/PCI device VM.Config.HWType, a real host device root.
 */
export function configKeyPrivilege(key: string, value?: string): ConfigKeyPrivilege {
  for (const [pattern, privilege] of GROUPS) if (pattern.test(key)) return privilege;
  if (key === 'cdrom') return { all: ['VM.Config.CDROM'] };
  if (DRIVE.test(key)) {
    const isCdrom = value !== undefined && /(^|,)media=cdrom(,|$)/.test(value) && !/cloudinit/.test(value);
    return { all: [isCdrom ? 'VM.Config.CDROM' : 'VM.Config.Disk'] };
  }
  if (/^serial\d+$/.test(key)) return value === undefined || value === 'socket' ? { all: ['VM.Config.HWType'] } : { rootOnly: true };
  if (/^(usb|hostpci)\d+$/.test(key)) {
    const mapped = value === undefined || /(^|,)mapping=/.test(value) || /^spice(,|$)/.test(value) || /(^|,)host=spice(,|$)/.test(value);
    return mapped ? { all: ['VM.Config.HWType'] } : { rootOnly: true };
  }
  // args, lock, hookscript, affinity and every key qemu-server's permission check does not list.
  return { rootOnly: true };
}

/** Whether `granted` satisfies what `key` needs; root-only keys never (the caller checks for root@pam itself). */
export function grantsConfigKey(need: ConfigKeyPrivilege, granted: (privilege: string) => boolean): boolean {
  if ('rootOnly' in need) return false;
  return 'all' in need ? need.all.every(granted) : need.any.some(granted);
}
