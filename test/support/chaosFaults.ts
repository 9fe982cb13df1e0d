import type { SimulatedWorld } from '../../src/simulators/world';

/**
 * Lock timeouts on a share of the Proxmox operations of the builds, as a backup job or a hung `qm` holding a VM's
 * config flock would cause. Proxmox picks nothing at random, so the share is made here: the template's flock is
 * refused to `share` of the expected clones, and each new VM's flock, with probability `share`, to its next
 * operation (the configuration) and, independently, to its start.
 */
export interface LockTimeoutInjector {
  /** Faults armed per operation, and how many VMs were seen (clones retried under a new VMID add to them). */
  injected(): { clone: number; config: number; start: number; vmsSeen: number };
  stop(): void;
}

export function injectLockTimeouts(world: SimulatedWorld, opts: { share: number; builds: number; templateVmid: number; everyMs?: number }): LockTimeoutInjector {
  const counts = { clone: Math.round(opts.share * opts.builds), config: 0, start: 0 };
  if (counts.clone > 0) world.pve.faults.set({ lockTimeout: { vmid: opts.templateVmid, times: counts.clone } });
  const seen = new Set<number>();
  const startPlanned = new Set<number>();
  const timer = setInterval(() => {
    for (const vm of world.pve.dump().vms) {
      if (vm.template || vm.vmid === opts.templateVmid) continue;
      if (!seen.has(vm.vmid)) {
        seen.add(vm.vmid);
        if (Math.random() < opts.share) {
          world.pve.faults.set({ lockTimeout: { vmid: vm.vmid, times: 1 } });
          counts.config++;
        }
        if (Math.random() < opts.share) startPlanned.add(vm.vmid);
      }
      // Configured (cloud-init's user-data is attached by the configuration) and not yet started: the start is next.
      if (startPlanned.has(vm.vmid) && vm.status === 'stopped' && vm.config.cicustom !== undefined) {
        startPlanned.delete(vm.vmid);
        world.pve.faults.set({ lockTimeout: { vmid: vm.vmid, times: 1 } });
        counts.start++;
      }
    }
  }, opts.everyMs ?? 100);
  return {
    injected: () => ({ ...counts, vmsSeen: seen.size }),
    stop: () => clearInterval(timer),
  };
}
