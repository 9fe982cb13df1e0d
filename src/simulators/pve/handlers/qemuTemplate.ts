import type { Route, SimContext } from '../context';
import { pveDie } from '../errors';
import { joinPropertyString } from '../propertyString';
import type { VmState } from '../cluster';
import { assertNotLocked, drivesOf, loadVm, withFlock } from './qemuCommon';

/**
 * `POST /nodes/{node}/qemu/{vmid}/template` (qemu-server `API2/Qemu.pm template`, `template_create`): checks
 * before and again inside a `qmtemplate` worker (config flock, 10 s), sets `template: 1`, then turns each disk
 * (cdroms and the cloud-init drive excepted; only `disk` when given) into a base volume: `vm-<id>-disk-<n>` becomes
 * `base-<id>-disk-<n>` (pve-storage `vdisk_create_base`), which is what linked clones are made from.
 */
function assertConvertible(vm: VmState, disk: string | undefined): void {
  assertNotLocked(vm);
  if (vm.snapshots?.size) throw pveDie('unable to create template, because VM contains snapshots');
  if (vm.config.template === '1' && !disk) throw pveDie("you can't convert a template to a template");
  if (vm.run) throw pveDie("you can't convert a VM to template if VM is running");
}

export const templateRoute: Route = {
  method: 'POST',
  path: '/nodes/{node}/qemu/{vmid}/template',
  permission: ({ identity, params }, sim) => sim.perms.check(identity, `/vms/${params.str('vmid')}`, ['VM.Allocate']),
  handle: ({ identity, params }, sim: SimContext) => {
    const node = params.req('node');
    const vmid = Number(params.req('vmid'));
    const disk = params.str('disk');
    assertConvertible(loadVm(sim, node, vmid), disk);
    return sim.tasks.start({
      node,
      type: 'qmtemplate',
      id: String(vmid),
      identity,
      worker: (ctx) =>
        withFlock(sim, node, vmid, () => {
          const vm = loadVm(sim, node, vmid);
          assertConvertible(vm, disk);
          ctx.failIfInjected();
          vm.config.template = '1';
          for (const d of drivesOf(vm)) {
            if (d.cdrom || (disk !== undefined && d.key !== disk) || d.volname.includes('/')) continue;
            const base = d.volname.replace(/^vm-(\d+)-disk-/, 'base-$1-disk-');
            if (base === d.volname) continue;
            if (sim.cluster.storages.get(d.storage)?.type === 'lvmthin') {
              ctx.log(`  Renamed "${d.volname}" to "${base}" in volume group "pve"`);
              ctx.log(`  Logical volume pve/${base} changed.`);
            }
            vm.config[d.key] = joinPropertyString({ ...d.options, file: `${d.storage}:${base}` }, 'file');
          }
        }),
    }).upid;
  },
};
