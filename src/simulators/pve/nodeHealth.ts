import type { SimContext } from './context';

/**
 * Whether a node is up, as the cluster sees it: seeded offline, or taken down by a `nodeOffline` fault. A down
 * node is `offline` in `/nodes` and `/cluster/resources` at once, while its guests keep their last RRD data for
 * `rrdExpiryMs` (5 min) and only then turn `unknown` (reference §4.4, §6.9).
 */
export interface NodeHealth {
  online: boolean;
  /** ms since epoch the node went down (for seeded offline nodes: long before the simulator started). */
  downSince?: number;
  /** How pveproxy fails to reach it. */
  error?: 'refused' | 'no-route' | 'timeout';
}

export function nodeHealth(sim: SimContext, node: string): NodeHealth {
  const fault = sim.faults.peek('nodeOffline', { node });
  if (fault) return { online: false, downSince: fault.since, error: fault.error ?? 'no-route' };
  if (sim.cluster.nodes.get(node)?.status === 'offline') {
    return { online: false, downSince: sim.cluster.bootedAt - sim.timing.rrdExpiryMs - 1, error: 'no-route' };
  }
  return { online: true };
}
