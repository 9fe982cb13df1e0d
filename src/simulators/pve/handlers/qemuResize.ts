import type { Route } from '../context';
import { assertRootOnly } from '../context';
import { configMissingText, permissionError } from '../errors';
import { parseSize } from '../cluster';
import { joinPropertyString } from '../propertyString';
import { sleep } from '../timing';
import { digestOf } from './qemuConfig';
import { allocateVolume, drivesOf } from './qemuCommon';

/**
 * `PUT /nodes/{node}/qemu/{vmid}/resize` (reference §4.10): an async `resize` task since PVE 8. Every check runs
 * in the worker under the config flock; sizes grow only; `+` means relative and, being a space in a form body,
 * reaches the server only when sent as `%2B` (otherwise the schema pattern refuses it).
 */
const UNITS: [string, number][] = [
  ['T', 1024 ** 4],
  ['G', 1024 ** 3],
  ['M', 1024 ** 2],
  ['K', 1024],
];

/** `PVE::JSONSchema::format_size`: the largest unit that divides the size exactly. */
export function formatSize(bytes: number): string {
  for (const [unit, factor] of UNITS) if (bytes % factor === 0) return `${bytes / factor}${unit}`;
  return String(bytes);
}

export const resizeRoute: Route = {
  method: 'PUT',
  path: '/nodes/{node}/qemu/{vmid}/resize',
  permission: ({ identity, params }, sim) => sim.perms.check(identity, `/vms/${params.str('vmid')}`, ['VM.Config.Disk']),
  handle: (req, sim) => {
    assertRootOnly(req, 'skiplock');
    const node = req.params.req('node');
    const vmid = Number(req.params.req('vmid'));
    const disk = req.params.req('disk');
    const sizeText = req.params.req('size');
    return sim.tasks.start({
      node,
      type: 'resize',
      id: String(vmid),
      identity: req.identity,
      worker: async (ctx) => {
        const release = await sim.flocks.acquire(node, vmid, 'exclusive', sim.timing.flockTimeoutMs);
        try {
          const vm = sim.cluster.vmOnNode(node, vmid);
          if (!vm) throw new Error(configMissingText(node, vmid));
          const digest = req.params.str('digest');
          if (digest && digest !== digestOf(vm)) throw new Error('detected modified configuration - file changed by other user? Try again.');
          if (vm.config.lock !== undefined && !req.params.bool('skiplock')) throw new Error(`VM is locked (${vm.config.lock})`);
          const drive = drivesOf(vm).find((d) => d.key === disk);
          if (!drive) throw new Error(`disk '${disk}' does not exist`);
          if (drive.cdrom) throw new Error("you can't resize a cdrom");
          if (!sim.perms.has(req.identity, `/storage/${drive.storage}`, ['Datastore.AllocateSpace'])) {
            throw permissionError(`/storage/${drive.storage}, Datastore.AllocateSpace`);
          }
          const relative = sizeText.startsWith('+');
          const amount = parseSize(relative ? sizeText.slice(1) : sizeText);
          const newSize = relative ? drive.sizeBytes + amount : amount;
          if (newSize < drive.sizeBytes) throw new Error('shrinking disks is not supported');
          if (newSize === drive.sizeBytes) return;
          await sleep(sim.timing.resizeMs);
          ctx.failIfInjected();
          if (!drive.volname.includes('/')) {
            await allocateVolume(sim, drive.storage, node, newSize - drive.sizeBytes, drive.volname);
          }
          // A real guest boots from its first disk: that image grows (the running QEMU's block device, or the file).
          if (sim.realGuests && drivesOf(vm).find((d) => !d.cdrom)?.key === disk) await sim.realGuests.resize(vmid, newSize);
          vm.config[disk] = joinPropertyString({ ...drive.options, size: formatSize(newSize) }, 'file');
          ctx.log(`Image resized to ${formatSize(newSize)}.`);
        } finally {
          release();
        }
      },
    }).upid;
  },
};
