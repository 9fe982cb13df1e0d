import { formatIpv4, inRanges, type Ipv4Range } from './ipv4';

/**
 * A pool of static IPv4 addresses for the VMs: one subnet, minus its network and broadcast addresses, the gateway
 * and whatever the operator excludes (addresses used outside pveflow). Plain JSON: it travels to the ipPool workflow.
 */
export interface AddressPoolSpec {
  /** The subnet, as numbers: every address handed out lies in it. */
  range: Ipv4Range;
  prefix: number;
  gateway: number;
  exclude: Ipv4Range[];
}

/** The lowest address of the pool that is neither excluded nor in `taken`; undefined when the pool is exhausted. */
export function firstFreeAddress(pool: AddressPoolSpec, taken: ReadonlySet<number>): number | undefined {
  const [network, broadcast] = pool.range;
  for (let n = network + 1; n < broadcast; n++) {
    if (n === pool.gateway || taken.has(n) || inRanges(n, pool.exclude)) continue;
    return n;
  }
  return undefined;
}

/** How many addresses the pool can hand out at all. */
export function poolSize(pool: AddressPoolSpec): number {
  let n = 0;
  for (let a = pool.range[0] + 1; a < pool.range[1]; a++) if (a !== pool.gateway && !inRanges(a, pool.exclude)) n++;
  return n;
}

export function describePool(pool: AddressPoolSpec): string {
  return `${formatIpv4(pool.range[0])}/${pool.prefix}`;
}
