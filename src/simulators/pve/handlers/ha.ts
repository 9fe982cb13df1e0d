import { createHash } from 'node:crypto';
import type { Route, SimContext } from '../context';
import type { HaResource } from '../cluster';
import { paramError, pveDie } from '../errors';
import { scheduleHaAction } from './qemuPower';

/**
 * HA resources (pve-ha-manager `API2/HA/Resources.pm`, reference §4.17): listing needs `Sys.Audit` on `/`,
 * changes `Sys.Console` on `/`. A resource makes the VM's power actions `hastart`/`hastop` requests and its
 * destroy demand `purge`; the HA stack then drives the VM to the requested state (`scheduleHaAction`).
 */
function parseSid(sid: string): number {
  const m = /^(?:vm:)?(\d+)$/.exec(sid);
  if (!m) throw paramError({ sid: `unable to parse service id '${sid}'` });
  return Number(m[1]);
}

function haDigest(sim: SimContext): string {
  return createHash('sha1')
    .update(JSON.stringify([...sim.cluster.ha.values()]))
    .digest('hex');
}

function view(sim: SimContext, r: HaResource): Record<string, unknown> {
  return {
    sid: r.sid,
    type: 'vm',
    state: r.state,
    digest: haDigest(sim),
    ...(r.max_restart !== undefined ? { max_restart: r.max_restart } : {}),
    ...(r.max_relocate !== undefined ? { max_relocate: r.max_relocate } : {}),
    ...(r.failback !== undefined ? { failback: r.failback } : {}),
    ...(r.group !== undefined ? { group: r.group } : {}),
    ...(r.comment !== undefined ? { comment: r.comment } : {}),
  };
}

const rootAudit: Route['permission'] = ({ identity }, sim) => sim.perms.check(identity, '/', ['Sys.Audit']);
const rootConsole: Route['permission'] = ({ identity }, sim) => sim.perms.check(identity, '/', ['Sys.Console']);

export const haRoutes: Route[] = [
  {
    method: 'GET',
    path: '/cluster/ha/resources',
    permission: rootAudit,
    handle: ({ params }, sim) => {
      const type = params.str('type');
      if (type === 'ct') return [];
      return [...sim.cluster.ha.values()].map((r) => view(sim, r));
    },
  },
  {
    method: 'GET',
    path: '/cluster/ha/resources/{sid}',
    permission: rootAudit,
    handle: ({ params }, sim) => {
      const vmid = parseSid(params.req('sid'));
      const r = sim.cluster.ha.get(vmid);
      if (!r) throw pveDie(`no such resource 'vm:${vmid}'`);
      return view(sim, r);
    },
  },
  {
    method: 'POST',
    path: '/cluster/ha/resources',
    permission: rootConsole,
    handle: ({ params }, sim) => {
      const vmid = parseSid(params.req('sid'));
      const sid = `vm:${vmid}`;
      if (sim.cluster.ha.has(vmid)) throw pveDie(`resource ID '${sid}' already defined`);
      if (!sim.cluster.vms.has(vmid)) throw pveDie(`unable to find VM ${vmid}`);
      const requested = params.str('state') ?? 'started';
      const state = (requested === 'enabled' ? 'started' : requested) as HaResource['state'];
      sim.cluster.ha.set(vmid, {
        sid,
        vmid,
        state,
        comment: params.str('comment'),
        group: params.str('group'),
        max_restart: params.int('max_restart'),
        max_relocate: params.int('max_relocate'),
        failback: params.has('failback') ? (params.bool('failback') ? 1 : 0) : undefined,
      });
      scheduleHaAction(sim, vmid);
      return null;
    },
  },
  {
    method: 'DELETE',
    path: '/cluster/ha/resources/{sid}',
    permission: rootConsole,
    handle: ({ params }, sim) => {
      const vmid = parseSid(params.req('sid'));
      if (!sim.cluster.ha.delete(vmid)) throw pveDie(`cannot delete service 'vm:${vmid}', not HA managed!`);
      return null;
    },
  },
];
