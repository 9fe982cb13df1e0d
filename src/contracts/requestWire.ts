import { requestFields, type RequestFields } from '../domain/deviceRequest';

/**
 * The request's fields under the names the wire gives them (snake_case; the org is the `client`). A domain field
 * missing here is not taken from the wire (`templateVmid`, `imageTemplates`: the intake resolves them from the image). This map is
 * the only place the two vocabularies meet: the wire schema, the domain object built from a body and the field a 400
 * names are all derived from it.
 */
export const wireNames = {
  name: 'name',
  org: 'client',
  requester: 'requester',
  consultants: 'consultants',
  period: 'period',
  image: 'image',
  cores: 'cores',
  memoryMiB: 'memory_mib',
  diskGiB: 'disk_gib',
  fullClone: 'full_clone',
  sshKeys: 'ssh_keys',
  network: 'network',
  cloudInit: 'cloud_init',
} as const satisfies Partial<Record<keyof typeof requestFields, string>>;

type WireNames = typeof wireNames;
type OnTheWire = keyof WireNames;

/** The domain's field schemas, keyed by their wire names. */
export type WireShape = { [K in OnTheWire as WireNames[K]]: (typeof requestFields)[K] };

export const wireShape: WireShape = Object.fromEntries((Object.keys(wireNames) as OnTheWire[]).map((k) => [wireNames[k], requestFields[k]])) as WireShape;

/** A parsed body's request fields in the domain's words (to be parsed by the domain's schema). */
export function fromWire(body: { [K in OnTheWire as WireNames[K]]?: RequestFields[K] }): Partial<Pick<RequestFields, OnTheWire>> {
  return Object.fromEntries((Object.keys(wireNames) as OnTheWire[]).map((k) => [k, body[wireNames[k]]]));
}

const byDomainName: Record<string, string> = wireNames;

/** Domain field path → wire field path, so that a 400 names the field the caller sent. */
export const toWireField = (field: string) => field.replace(/^[^.]+/, (head) => byDomainName[head] ?? head);
