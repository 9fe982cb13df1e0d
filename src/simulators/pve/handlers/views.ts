import type { SimContext } from '../context';
import { DRIVE_KEY_RE, parseSize, type VmState } from '../cluster';
import { splitPropertyString } from '../propertyString';
import type { Identity } from '../permissions';
import { nodeHealth, type NodeHealth } from '../nodeHealth';

/** Shapes shared by `/cluster/resources` and `/pools?poolid=` (pve-manager `API2Tools.pm extract_vm_stats`). */
export function vmCpus(vm: VmState): number {
  return Number(vm.config.cores ?? 1) * Number(vm.config.sockets ?? 1);
}

export function vmMaxmem(vm: VmState): number {
  const text = vm.config.memory ?? '512';
  // Almost always a plain number; only `current=<n>,...` needs the property-string parser.
  const memory = /^\d+$/.test(text) ? text : (splitPropertyString(text, 'current').current ?? '512');
  return Number(memory) * 1024 * 1024;
}

export function vmMaxdisk(vm: VmState): number {
  const boot = Object.entries(vm.config).find(([k, v]) => DRIVE_KEY_RE.test(k) && !/media=cdrom/.test(v));
  return boot ? parseSize(splitPropertyString(boot[1], 'file').size) : 0;
}

/** Node health looked up once per node and request (a listing of 10,000 VMs asks for each VM's node). */
export function nodeHealthCache(sim: SimContext): (node: string) => NodeHealth {
  const cache = new Map<string, NodeHealth>();
  return (node) => {
    let h = cache.get(node);
    if (!h) cache.set(node, (h = nodeHealth(sim, node)));
    return h;
  };
}

/**
 * What pvestatd last pushed for the VM: with a `resourcesLagMs` delay while its node is up; frozen at the moment
 * its node went down, and `unknown` once that RRD data is older than `rrdExpiryMs`.
 */
function rrdStatus(sim: SimContext, vm: VmState, now: number, health: NodeHealth) {
  if (health.online || health.downSince === undefined) return sim.cluster.observedStatus(vm, now, sim.timing.resourcesLagMs);
  if (now - health.downSince > sim.timing.rrdExpiryMs) return 'unknown';
  return sim.cluster.observedStatus(vm, health.downSince, sim.timing.resourcesLagMs);
}

export function vmResource(sim: SimContext, vm: VmState, identity: Identity, now: number, health: (node: string) => NodeHealth = nodeHealthCache(sim)): Record<string, unknown> {
  const status = rrdStatus(sim, vm, now, health(vm.node));
  const entry: Record<string, unknown> = {
    id: `qemu/${vm.vmid}`,
    type: 'qemu',
    vmid: vm.vmid,
    node: vm.node,
    status,
    template: vm.config.template === '1' ? 1 : 0,
  };
  if (status !== 'unknown') {
    const running = (status === 'running' || status === 'paused') && vm.run;
    const maxmem = vmMaxmem(vm);
    Object.assign(entry, {
      name: vm.config.name ?? `VM ${vm.vmid}`,
      maxcpu: vmCpus(vm),
      maxmem,
      maxdisk: vmMaxdisk(vm),
      cpu: running ? 0.02 : 0,
      mem: running ? Math.floor(maxmem * 0.3) : 0,
      memhost: running ? Math.floor(maxmem * 0.32) : 0,
      disk: 0,
      uptime: running && vm.run ? Math.floor((now - vm.run.startedAt) / 1000) : 0,
      netin: 0,
      netout: 0,
      diskread: 0,
      diskwrite: 0,
    });
  }
  if (vm.config.tags !== undefined) entry.tags = vm.config.tags;
  if (vm.config.lock !== undefined) entry.lock = vm.config.lock;
  if (vm.pool && sim.perms.has(identity, `/pool/${vm.pool}`, ['Pool.Audit'])) entry.pool = vm.pool;
  const ha = sim.cluster.ha.get(vm.vmid);
  if (ha) entry.hastate = ha.state;
  return entry;
}
