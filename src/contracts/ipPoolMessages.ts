import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { AddressPoolSpec } from '../domain/addressPool';

export interface AddressLease {
  serial: string;
  address: string;
}

/**
 * The request's address: the one it already holds, else the lowest free one. The pool's definition comes with every
 * lease, so an operator's change (more exclusions, a wider subnet) applies to the next lease; addresses already
 * leased stay with their requests. Fails with `IpPoolExhausted` when nothing is free.
 */
export const leaseAddressUpdate = defineUpdate<AddressLease, [{ serial: string; pool: AddressPoolSpec }]>('leaseAddress');
/** Gives the request's address back (its VM is gone). Unknown serials are ignored. */
export const releaseAddressSignal = defineSignal<[{ serial: string }]>('releaseAddress');
export const addressLeasesQuery = defineQuery<AddressLease[]>('addressLeases');
