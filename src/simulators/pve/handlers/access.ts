import type { ApiRequest, Route, SimContext } from '../context';
import { authId, type Identity } from '../permissions';

/**
 * `GET /access/permissions` (pve-access-control `API2/AccessControl.pm permissions`): the effective privileges of
 * the caller, or of `userid`, as `{ "<path>": { "<privilege>": <propagate 0|1> } }`. With `path` only that path is
 * answered (under the key as given, `{}` inside when nothing is granted); without it every path PVE considers
 * (`get_effective_permissions`): the top-level ones, every ACL path and every pool member, omitting paths with no
 * privilege. Anyone may ask about themselves and a user about its own tokens; asking about anyone else needs
 * `Sys.Audit` on `/access`.
 */
const TOP_LEVEL_PATHS = ['/', '/access', '/access/groups', '/nodes', '/pool', '/sdn', '/storage', '/vms'];

function subjectOf({ identity, params }: ApiRequest): Identity {
  const userid = params.str('userid');
  if (userid === undefined || userid === authId(identity)) return identity;
  const [user, tokenName] = userid.split('!') as [string, string | undefined];
  // Another identity's token is taken as privilege-separated, `pveum user token add`'s default (the handlers do not
  // see the token list); a caller asking about itself is answered with its real setting.
  return tokenName ? { userid: user, tokenName, privsep: true } : { userid: user, privsep: false };
}

function mayAsk({ identity, params }: ApiRequest, sim: SimContext): void {
  const userid = params.str('userid');
  if (userid === undefined || userid === authId(identity)) return;
  const ownToken = !identity.tokenName && userid.startsWith(`${identity.userid}!`);
  if (!ownToken) sim.perms.check(identity, '/access', ['Sys.Audit']);
}

export const accessRoutes: Route[] = [
  {
    method: 'GET',
    path: '/access/permissions',
    permission: mayAsk,
    handle: (req, sim) => {
      const subject = subjectOf(req);
      const path = req.params.str('path');
      if (path !== undefined) return { [path]: sim.perms.effectivePrivileges(subject, path) };
      const paths = new Set([...TOP_LEVEL_PATHS, ...sim.perms.aclPaths()]);
      for (const vm of sim.cluster.vms.values()) if (vm.pool) paths.add(`/vms/${vm.vmid}`);
      for (const pool of sim.cluster.pools.values()) for (const storage of pool.storages) paths.add(`/storage/${storage}`);
      const out: Record<string, Record<string, 0 | 1>> = {};
      for (const p of [...paths].sort()) {
        const privs = sim.perms.effectivePrivileges(subject, p);
        if (Object.keys(privs).length > 0) out[p] = privs;
      }
      return out;
    },
  },
];
