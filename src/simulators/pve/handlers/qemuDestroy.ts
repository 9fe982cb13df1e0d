import type { Route } from '../context';
import { assertRootOnly } from '../context';
import { configMissingText, pveDie } from '../errors';
import { sleep } from '../timing';
import { drivesOf, haManaged, loadVm, releaseVolumes } from './qemuCommon';

/**
 * `DELETE /nodes/{node}/qemu/{vmid}` (reference §4.14): early checks as HTTP errors; the worker takes the config
 * flock, repeats the checks, frees the disks (their space returns to the storage) and only then removes the VM
 * from the vmlist, its pool, its ACLs and (with `purge`, which an HA-managed VM requires) its HA resource.
 */
export const destroyRoute: Route = {
  method: 'DELETE',
  path: '/nodes/{node}/qemu/{vmid}',
  permission: ({ identity, params }, sim) => sim.perms.check(identity, `/vms/${params.str('vmid')}`, ['VM.Allocate']),
  handle: (req, sim) => {
    assertRootOnly(req, 'skiplock');
    const node = req.params.req('node');
    const vmid = Number(req.params.req('vmid'));
    const vm = loadVm(sim, node, vmid);
    if (vm.config.protection === '1') throw pveDie(`can't remove VM ${vmid} - protection mode enabled`);
    const purge = req.params.bool('purge') ?? false;
    if (haManaged(sim, vmid) && !purge) throw pveDie(`unable to remove VM ${vmid} - used in HA resources and purge parameter not set.`);
    if (vm.run) throw pveDie(`VM ${vmid} is running - destroy failed`);
    return sim.tasks.start({
      node,
      type: 'qmdestroy',
      id: String(vmid),
      identity: req.identity,
      worker: async (ctx) => {
        const release = await sim.flocks.acquire(node, vmid, 'exclusive', sim.timing.flockTimeoutMs);
        try {
          const current = sim.cluster.vmOnNode(node, vmid);
          if (!current) throw new Error(configMissingText(node, vmid));
          const lock = current.config.lock;
          if (lock !== undefined && lock !== 'suspended' && !req.params.bool('skiplock')) throw new Error(`VM is locked (${lock})`);
          if (current.run) throw new Error(`VM ${vmid} is running - destroy failed`);
          await sleep(sim.timing.destroyMs);
          ctx.failIfInjected();
          for (const d of drivesOf(current)) {
            if (d.cdrom && !d.cloudinit) continue;
            ctx.log(`Removing image: 100% complete...done. (${d.volid})`);
          }
          releaseVolumes(sim, current);
          // A real guest's disk, cloud-init drive and console log go with it.
          await sim.realGuests?.destroy(vmid);
          if (purge && haManaged(sim, vmid)) ctx.log(`Removing HA resource vm:${vmid}`);
          sim.cluster.removeVm(vmid);
          sim.perms.removePath(`/vms/${vmid}`);
        } finally {
          release();
        }
      },
    }).upid;
  },
};
