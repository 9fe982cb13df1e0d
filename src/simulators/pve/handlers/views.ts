import type { SimContext } from '../context';
import { DRIVE_KEY_RE, parseSize, type VmState } from '../cluster';
import { splitPropertyString } from '../propertyString';
import type { Identity } from '../permissions';

/** Shapes shared by `/cluster/resources` and `/pools?poolid=` (pve-manager `API2Tools.pm extract_vm_stats`). */
export function vmCpus(vm: VmState): number {
  return Number(vm.config.cores ?? 1) * Number(vm.config.sockets ?? 1);
}

export function vmMaxmem(vm: VmState): number {
  const memory = splitPropertyString(vm.config.memory ?? '512', 'current').current ?? '512';
  return Number(memory) * 1024 * 1024;
}

export function vmMaxdisk(vm: VmState): number {
  const boot = Object.entries(vm.config).find(([k, v]) => DRIVE_KEY_RE.test(k) && !/media=cdrom/.test(v));
  return boot ? parseSize(splitPropertyString(boot[1], 'file').size) : 0;
}

export function vmResource(sim: SimContext, vm: VmState, identity: Identity, now: number): Record<string, unknown> {
  const status = sim.cluster.observedStatus(vm, now, sim.timing.resourcesLagMs);
  const entry: Record<string, unknown> = {
    id: `qemu/${vm.vmid}`,
    type: 'qemu',
    vmid: vm.vmid,
    node: vm.node,
    status,
    template: vm.config.template === '1' ? 1 : 0,
  };
  if (status !== 'unknown') {
    const running = status === 'running' && vm.run;
    Object.assign(entry, {
      name: vm.config.name ?? `VM ${vm.vmid}`,
      maxcpu: vmCpus(vm),
      maxmem: vmMaxmem(vm),
      maxdisk: vmMaxdisk(vm),
      cpu: running ? 0.02 : 0,
      mem: running ? Math.floor(vmMaxmem(vm) * 0.3) : 0,
      memhost: running ? Math.floor(vmMaxmem(vm) * 0.32) : 0,
      disk: 0,
      uptime: running && vm.run ? Math.floor((now - vm.run.startedAt) / 1000) : 0,
      netin: 0, netout: 0, diskread: 0, diskwrite: 0,
    });
  }
  if (vm.config.tags !== undefined) entry.tags = vm.config.tags;
  if (vm.config.lock !== undefined) entry.lock = vm.config.lock;
  if (vm.pool && sim.perms.has(identity, `/pool/${vm.pool}`, ['Pool.Audit'])) entry.pool = vm.pool;
  return entry;
}
