// No zod here, no Node built-ins: activities and tests import this; nothing in it touches the world.

/**
 * What a reconfigure of a VM takes on Proxmox, decided from its config before anything changes. Proxmox applies a
 * config change to a running VM at once only when it can hot-plug it (proxmox-behaviour.md §4.9; qemu-server
 * `vmconfig_hotplug_pending`), and everything else waits in `[pending]` until a start, a stop or `status/reboot`:
 * - CPUs: only `vcpus` hot-plugs, with `cpu` in the VM's `hotplug` setting, and only up to its topology
 *   (`sockets` × `cores`); a new `cores` always waits for a restart.
 * - Memory: with `memory` in `hotplug` and NUMA on (qemu-server refuses memory hot-plug without it), and only
 *   upwards here: taking memory away from a running guest depends on the guest giving it back.
 * - Disks grow online (`resize`), and never shrink.
 */

export interface VmHardware {
  running: boolean;
  cores: number;
  sockets: number;
  /** Hot-plugged vCPUs, when set: the CPUs the guest has now (at most sockets × cores). */
  vcpus?: number;
  memoryMiB: number;
  numa: boolean;
  /** The VM's `hotplug` option as in its config (unset: Proxmox's default `network,disk,usb`). */
  hotplug?: string;
  bootDisk?: { key: string; sizeGiB: number };
}

export interface WantedHardware {
  cores?: number;
  memoryMiB?: number;
  diskGiB?: number;
}

export interface ReconfigurePlan {
  /** Config keys to set and to delete in one config update (empty: no config change). */
  set: Record<string, string>;
  remove: string[];
  /** The changes that take effect at once, and those that wait for a reboot, in words. */
  live: string[];
  afterReboot: string[];
  /** The boot disk to grow (live). */
  grow?: { disk: string; sizeGiB: number };
  /** Why it cannot be done at all, naming the field; nothing changes. */
  refusal?: { field: 'cores' | 'memoryMiB' | 'diskGiB'; reason: string };
}

export function hotplugFeatures(setting: string | undefined): Set<string> {
  if (setting === undefined || setting === '1') return new Set(['network', 'disk', 'usb']);
  if (setting === '0' || setting === '') return new Set();
  return new Set(setting.split(',').map((f) => f.trim()));
}

/** The CPUs the guest has: the hot-plugged count when set, else its topology. */
export const currentCpus = (vm: VmHardware): number => vm.vcpus ?? vm.sockets * vm.cores;

export function planReconfigure(vm: VmHardware, want: WantedHardware): ReconfigurePlan {
  const plan: ReconfigurePlan = { set: {}, remove: [], live: [], afterReboot: [] };
  const features = hotplugFeatures(vm.hotplug);

  if (want.diskGiB !== undefined) {
    if (!vm.bootDisk) return { ...plan, refusal: { field: 'diskGiB', reason: 'the VM has no boot disk with a size pveflow can grow' } };
    if (want.diskGiB < vm.bootDisk.sizeGiB) {
      return { ...plan, refusal: { field: 'diskGiB', reason: `the disk is ${vm.bootDisk.sizeGiB} GiB and Proxmox only grows disks: ask for ${vm.bootDisk.sizeGiB} GiB or more` } };
    }
    if (want.diskGiB > vm.bootDisk.sizeGiB) {
      plan.grow = { disk: vm.bootDisk.key, sizeGiB: want.diskGiB };
      plan.live.push(`disk ${vm.bootDisk.sizeGiB} → ${want.diskGiB} GiB`);
    }
  }

  if (want.cores !== undefined && want.cores !== currentCpus(vm)) {
    const what = `cores ${currentCpus(vm)} → ${want.cores}`;
    if (vm.running && features.has('cpu') && want.cores <= vm.sockets * vm.cores) {
      plan.set.vcpus = String(want.cores);
      plan.live.push(what);
    } else {
      // One socket of `cores`: the topology pveflow's builds give a VM; `vcpus` no longer caps it.
      plan.set.cores = String(want.cores);
      if (vm.sockets !== 1) plan.set.sockets = '1';
      if (vm.vcpus !== undefined) plan.remove.push('vcpus');
      (vm.running ? plan.afterReboot : plan.live).push(what);
    }
  }

  if (want.memoryMiB !== undefined && want.memoryMiB !== vm.memoryMiB) {
    const what = `memory ${vm.memoryMiB} → ${want.memoryMiB} MiB`;
    plan.set.memory = String(want.memoryMiB);
    const hotplugs = features.has('memory') && vm.numa && want.memoryMiB > vm.memoryMiB;
    (vm.running && !hotplugs ? plan.afterReboot : plan.live).push(what);
  }
  return plan;
}

/** Why a change waits for a reboot, for the caller who has to confirm it. */
export function rebootReason(vm: VmHardware, plan: ReconfigurePlan): string {
  const features = hotplugFeatures(vm.hotplug);
  const why: string[] = [];
  if (plan.afterReboot.some((c) => c.startsWith('cores'))) {
    why.push(features.has('cpu') ? `CPUs hot-plug only up to the VM's ${vm.sockets * vm.cores}` : "CPU hot-plug is off in the VM's hotplug option");
  }
  if (plan.afterReboot.some((c) => c.startsWith('memory'))) {
    why.push(!features.has('memory') ? "memory hot-plug is off in the VM's hotplug option" : !vm.numa ? 'memory hot-plug needs NUMA on' : 'memory is taken away only with a restart');
  }
  return why.join('; ');
}

/** `memory` as the config holds it: `2048` or `current=2048`. */
export function memoryOf(value: unknown): number | undefined {
  const m = /^(?:current=)?(\d+)/.exec(String(value ?? ''));
  return m ? Number(m[1]) : undefined;
}
