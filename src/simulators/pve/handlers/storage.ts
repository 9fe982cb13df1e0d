import { readdirSync, statSync } from 'node:fs';
import { sleep } from '../timing';
import { join } from 'node:path';
import type { Route, SimContext } from '../context';
import { pveDie } from '../errors';
import type { StorageSeed } from '../seed';
import { drivesOf } from './qemuCommon';
import { isFileBased, type FileContent } from '../storageFiles';
import { paramError } from '../errors';
import { existsSync, rmSync } from 'node:fs';

const FILE_CONTENTS: readonly FileContent[] = ['iso', 'vztmpl', 'import'];

/** `$real_volume_id` of pve-storage `Content.pm`: `volume` is a whole volid, or a volname on `storage`. */
function realVolumeId(storage: string | undefined, volume: string): { volid: string; sid: string; volname: string } {
  const m = /^([a-zA-Z][a-zA-Z0-9\-_.]*[a-zA-Z0-9]):(.+)$/.exec(volume);
  if (volume.includes(':')) {
    if (!m) throw paramError({ volume: `unable to parse volume ID '${volume}'` });
    if (storage && m[1] !== storage) throw paramError({ volume: `storage ID mismatch (${m[1]} != ${storage})` });
    return { volid: volume, sid: m[1]!, volname: m[2]! };
  }
  if (!storage) throw paramError({ volume: 'no storage specified - incomplete volume ID' });
  return { volid: `${storage}:${volume}`, sid: storage, volname: volume };
}

/** The file behind a file volume (`import/<name>`, `iso/<name>`, `vztmpl/<name>`), on this machine and as PVE names it. */
export function fileVolumePath(sim: SimContext, sid: string, volname: string, node: string): { path: string; pvePath: string; content: FileContent; name: string } | undefined {
  const storage = sim.cluster.storages.get(sid);
  const m = /^(import|iso|vztmpl)\/([^/]+)$/.exec(volname);
  if (!storage || !m || !isFileBased(storage)) return undefined;
  const content = m[1] as FileContent;
  return { path: join(sim.storageFiles.dir(storage, node, content), m[2]!), pvePath: `${sim.storageFiles.pvePath(storage, content)}/${m[2]}`, content, name: m[2]! };
}

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
      // iso, vztmpl and import files: listed for anyone who may list the storage at all (reference §4.6).
      for (const type of FILE_CONTENTS) {
        if ((content && content !== type) || !storage.content.includes(type) || vmid !== undefined || !isFileBased(storage)) continue;
        for (const f of sim.storageFiles.list(storage, node, type)) {
          const sub = type === 'vztmpl' ? 'vztmpl' : type;
          out.push({ volid: `${sid}:${sub}/${f.name}`, content: type, format: f.format, size: f.size, ctime: f.ctime });
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
  {
    // pve-storage `Content.pm delete`: `Datastore.Allocate` on the storage, then an `imgdel` task (id: the storage).
    method: 'DELETE',
    path: '/nodes/{node}/storage/{storage}/content/{volume}',
    handle: ({ identity, params }, sim) => {
      const node = params.req('node');
      const { volid, sid, volname } = realVolumeId(params.str('storage'), params.req('volume'));
      const storage = sim.cluster.storages.get(sid);
      if (!storage) throw pveDie(`storage '${sid}' does not exist`);
      sim.perms.check(identity, `/storage/${sid}`, ['Datastore.Allocate']);
      const file = fileVolumePath(sim, sid, volname, node);
      if (!file) throw pveDie(`deleting '${volid}' is not simulated (only iso, vztmpl and import files)`);
      const task = sim.tasks.start({
        node,
        type: 'imgdel',
        id: sid,
        identity,
        worker: async (ctx) => {
          await Promise.resolve();
          ctx.failIfInjected();
          if (!existsSync(file.path)) {
            ctx.warn(`disk image '${file.pvePath}' does not exist`);
          } else {
            const { size } = statSync(file.path);
            rmSync(file.path);
            sim.capacity.release(storage, node, size);
          }
          ctx.log(`Removed volume '${volid}'`);
        },
      });
      const delay = params.int('delay');
      if (delay === undefined) return task.upid;
      // `delay`: null when the task ended well within that many seconds, its error when it failed, else the UPID.
      return Promise.race([task.done.then(() => true), sleep(delay * 1000).then(() => false)]).then((ended) => {
        if (!ended) return task.upid;
        if (task.exitstatus === 'OK' || /^WARNINGS: \d+$/.test(task.exitstatus ?? '')) return null;
        throw pveDie(task.exitstatus ?? 'unexpected status');
      });
    },
  },
];
