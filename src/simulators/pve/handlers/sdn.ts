import type { Route } from '../context';

/**
 * `GET /nodes/{node}/sdn/zones/{zone}/content` (pve-manager `API2/Network/SDN/Zones/Content.pm`, `SDN.Audit` on
 * the zone): the zone's vnets as that node has them. Without SDN configured, the one zone is `localnetwork`, whose
 * vnets are the node's own Linux bridges (what the GUI's resource tree shows under each node); another zone lists
 * nothing. The bridges come from the seed's nodes (`vmbr0` when a node names none).
 */
export const sdnRoutes: Route[] = [
  {
    method: 'GET',
    path: '/nodes/{node}/sdn/zones/{zone}/content',
    permission: ({ identity, params }, sim) => sim.perms.check(identity, `/sdn/zones/${params.str('zone')}`, ['SDN.Audit']),
    handle: ({ params }, sim) => {
      if (params.req('zone') !== 'localnetwork') return [];
      const node = sim.cluster.nodes.get(params.req('node'));
      return (node?.bridges ?? ['vmbr0']).map((vnet) => ({ vnet, status: 'available' }));
    },
  },
];
