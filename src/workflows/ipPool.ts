import { ApplicationFailure, condition, continueAsNew, setHandler, workflowInfo } from '@temporalio/workflow';
import { describePool, firstFreeAddress, poolSize } from '../domain/addressPool';
import { formatIpv4, parseIpv4 } from '../domain/ipv4';
import { ErrorType } from '../errors';
import { addressLeasesQuery, leaseAddressUpdate, releaseAddressSignal, type AddressLease } from '../contracts/ipPoolMessages';

export interface IpPoolInput {
  /** Carried over by continue-as-new. */
  leases?: AddressLease[];
}

/** Keeps a run's history short: a new run after this many leases and releases (or when Temporal suggests it). */
const CHANGES_PER_RUN = 500;

/**
 * The static addresses handed to VMs (PVE_IP_POOL): which request holds which address. One long-lived workflow per
 * deployment, so that two builds running at once on two workers can never be given the same address, and a crash
 * anywhere loses no lease. A request keeps its address from its VM's configuration until the VM is destroyed.
 */
export async function ipPool(input: IpPoolInput = {}): Promise<void> {
  const leases = new Map<string, number>((input.leases ?? []).map((l) => [l.serial, parseIpv4(l.address)!]));
  let changes = 0;

  setHandler(leaseAddressUpdate, ({ serial, pool }) => {
    const held = leases.get(serial);
    if (held !== undefined) return { serial, address: formatIpv4(held) };
    const address = firstFreeAddress(pool, new Set(leases.values()));
    if (address === undefined) {
      throw ApplicationFailure.create({
        type: ErrorType.IpPoolExhausted,
        nonRetryable: true,
        message:
          `no free address in ${describePool(pool)} for request ${serial}: all ${poolSize(pool)} addresses outside PVE_IP_EXCLUDE are ` +
          `leased. Complete requests that are done, or widen PVE_IP_POOL / shorten PVE_IP_EXCLUDE, then rebuild.`,
      });
    }
    changes++;
    leases.set(serial, address);
    return { serial, address: formatIpv4(address) };
  });
  setHandler(releaseAddressSignal, ({ serial }) => {
    if (leases.delete(serial)) changes++;
  });
  setHandler(addressLeasesQuery, () => [...leases].map(([serial, n]) => ({ serial, address: formatIpv4(n) })));

  await condition(() => changes >= CHANGES_PER_RUN || workflowInfo().continueAsNewSuggested);
  await continueAsNew<typeof ipPool>({ leases: [...leases].map(([serial, n]) => ({ serial, address: formatIpv4(n) })) });
}
