import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Route, SimContext } from '../context';
import { pveDie } from '../errors';
import type { StorageSeed } from '../seed';
import { drivesOf } from './qemuCommon';

/**
 * Storage listing and content (pve-storage `API2/Storage/Status.pm`, `Content.pm`, reference §4.18). Snippets
 * are the files in the directory `snippetsDir(node, storage)` names — the same place pveflow uploads them to —
 * and are listed only for callers with `Datastore.Allocate` on the storage.
 */
function storageStatus(sim: SimContext, s: StorageSeed, node: string) {
  const avail = sim.capacity.avail(s, node);
  const used = s.total - avail;
  return {
    storage: s.id,
    type: s.type,
    content: s.content.join(','),
    shared: s.shared ? 1 : 0,
    active: 1,
    enabled: 1,
    total: s.total,
    used,
    avail,
    used_fraction: used / s.total,
  };
}

function snippetFiles(sim: SimContext, node: string, storage: string): { name: string; size: number; ctime: number }[] {
  const dir = sim.snippetsDir(node, storage);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.flatMap((name) => {
    try {
      const st = statSync(join(dir, name));
      return st.isFile() ? [{ name, size: st.size, ctime: Math.floor(st.ctimeMs / 1000) }] : [];
    } catch {
      return [];
    }
  });
}

export const storageRoutes: Route[] = [
  {
    method: 'GET',
    path: '/nodes/{node}/storage',
    handle: ({ identity, params }, sim) => {
      const node = params.req('node');
      const content = params.str('content')?.split(',');
      const only = params.str('storage');
      const target = params.str('target');
      return [...sim.cluster.storages.values()]
        .filter((s) => sim.cluster.storageEnabledOn(s, node))
        .filter((s) => sim.perms.has(identity, `/storage/${s.id}`, ['Datastore.Audit', 'Datastore.AllocateSpace'], true))
        .filter((s) => !content || content.some((c) => s.content.includes(c)))
        .filter((s) => only === undefined || s.id === only)
        .filter((s) => target === undefined || target === node || (s.shared && sim.cluster.storageEnabledOn(s, target)))
        .map((s) => storageStatus(sim, s, node));
    },
  },
  {
    method: 'GET',
    path: '/nodes/{node}/storage/{storage}/content',
    permission: ({ identity, params }, sim) => sim.perms.check(identity, `/storage/${params.str('storage')}`, ['Datastore.Audit', 'Datastore.AllocateSpace'], true),
    handle: ({ identity, params }, sim) => {
      const node = params.req('node');
      const sid = params.req('storage');
      const storage = sim.cluster.storages.get(sid);
      if (!storage) throw pveDie(`storage '${sid}' does not exist`);
      if (!sim.cluster.storageEnabledOn(storage, node)) throw pveDie(`storage '${sid}' is not available on node '${node}'`);
      const content = params.str('content');
      const vmid = params.int('vmid');
      const out: Record<string, unknown>[] = [];
      const auditStorage = sim.perms.has(identity, `/storage/${sid}`, ['Datastore.Audit']);
      if ((!content || content === 'images') && storage.content.includes('images')) {
        for (const vm of sim.cluster.vms.values()) {
          if (vmid !== undefined && vm.vmid !== vmid) continue;
          if (!storage.shared && vm.node !== node) continue;
          if (!auditStorage || !sim.perms.has(identity, `/vms/${vm.vmid}`, ['VM.Config.Disk'])) continue;
          for (const d of drivesOf(vm)) {
            if (d.storage !== sid || (d.cdrom && !d.cloudinit)) continue;
            const volname = d.volname.includes('/') ? d.volname.split('/')[1]! : d.volname;
            out.push({
              volid: `${sid}:${volname}`,
              content: 'images',
              format: 'raw',
              size: d.cloudinit ? 4 * 1024 * 1024 : d.sizeBytes,
              vmid: vm.vmid,
              ...(d.volname.includes('/') ? { parent: d.volname.split('/')[0] } : {}),
            });
          }
        }
      }
      const snippetsListed = (!content || content === 'snippets') && storage.content.includes('snippets') && vmid === undefined;
      if (snippetsListed && sim.perms.has(identity, `/storage/${sid}`, ['Datastore.Allocate'])) {
        for (const f of snippetFiles(sim, node, sid)) {
          out.push({ volid: `${sid}:snippets/${f.name}`, content: 'snippets', format: 'snippet', size: f.size, ctime: f.ctime });
        }
      }
      return out;
    },
  },
];
