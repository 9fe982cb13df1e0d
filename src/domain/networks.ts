import { z } from 'zod';
import type { ChoiceRefusal } from './choiceRules';

/** A Linux bridge (or SDN VNet) name as Proxmox takes it in `net0`'s `bridge=`. */
export const bridgeNameSchema = z.string().regex(/^[A-Za-z][A-Za-z0-9_.-]{0,14}$/, 'a bridge name (e.g. vmbr0): a letter, then up to 14 letters, digits, _ . -');

export const vlanSchema = z.number().int().min(1).max(4094);

/** The network a request asks for its VM's first NIC: a bridge, and a VLAN tag on it (absent: untagged). */
export const networkChoiceSchema = z.strictObject({ bridge: bridgeNameSchema, vlan: vlanSchema.optional() });

export type NetworkChoice = z.infer<typeof networkChoiceSchema>;

/** One entry of the allowed list: a bridge, untagged or with the VLANs in [min, max], for every org or only `orgs`. */
export interface AllowedNetwork {
  bridge: string;
  vlans?: { min: number; max: number };
  /** Only these organisations' requests may use it (absent: every one's), as an image may be reserved. */
  orgs?: string[];
}

/** An organisation's name as the request's `client` carries it (domain/deviceRequest's orgSchema). */
const ORG = /^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$/;

/**
 * `vmbr0,vmbr1:100,vmbr1:200-299` (PVE_NETWORKS): `vmbr0` untagged, `vmbr1` with VLAN 100 or any of 200-299. A
 * bridge a request may use untagged and tagged is listed twice (`vmbr1,vmbr1:100`). An entry may be reserved to
 * organisations: `vmbr2:300-399=Acme Corp|Initech`.
 */
export function parseAllowedNetworks(text: string): AllowedNetwork[] | { error: string } {
  const out: AllowedNetwork[] = [];
  for (const entry of text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^([^:=]+)(?::(\d+)(?:-(\d+))?)?(?:=(.*))?$/.exec(entry);
    const bridge = m && bridgeNameSchema.safeParse(m[1]);
    if (!m || !bridge?.success) return { error: `'${entry}' is not bridge, bridge:vlan or bridge:from-to (e.g. vmbr1:100-199), optionally =org|org` };
    const orgs = m[4] === undefined ? undefined : m[4].split('|').map((o) => o.trim());
    if (orgs && !orgs.every((o) => ORG.test(o))) return { error: `'${entry}': after =, organisation names separated by | (letters, digits, space, . _ -)` };
    const reserved = orgs ? { orgs } : {};
    if (m[2] === undefined) {
      out.push({ bridge: m[1]!, ...reserved });
      continue;
    }
    const min = Number(m[2]);
    const max = m[3] === undefined ? min : Number(m[3]);
    if (!vlanSchema.safeParse(min).success || !vlanSchema.safeParse(max).success || max < min) return { error: `'${entry}': VLANs are 1-4094, from ≤ to` };
    out.push({ bridge: m[1]!, vlans: { min, max }, ...reserved });
  }
  return out;
}

export const describeNetwork = (n: AllowedNetwork) => (n.vlans ? `${n.bridge} VLAN ${n.vlans.min === n.vlans.max ? n.vlans.min : `${n.vlans.min}-${n.vlans.max}`}` : `${n.bridge} untagged`);

/** Whether `org`'s requests may use `n`. */
export const networkOfferedTo = (n: AllowedNetwork, org: string) => !n.orgs || n.orgs.includes(org);

/**
 * Why `choice` is not on the allowed list (rule network-not-allowed) or is reserved to other organisations than the
 * request's (network-not-offered), or undefined when `org`'s request may use it. The list a refusal gives is what
 * `org` may use: a network reserved to others is not shown to them.
 */
export function networkRefusal(allowed: AllowedNetwork[], choice: NetworkChoice, org: string): ChoiceRefusal | undefined {
  const fits = (n: AllowedNetwork) => n.bridge === choice.bridge && (choice.vlan === undefined ? !n.vlans : !!n.vlans && choice.vlan >= n.vlans.min && choice.vlan <= n.vlans.max);
  const offered = allowed.filter((n) => networkOfferedTo(n, org));
  if (offered.some(fits)) return undefined;
  const list = offered.map(describeNetwork).join(', ') || 'none';
  if (allowed.some(fits)) return { field: 'network', reason: `${describeChoice(choice)} is reserved to other organisations than ${org}; allowed: ${list}`, rule: 'network-not-offered' };
  const onBridge = offered.filter((n) => n.bridge === choice.bridge);
  if (onBridge.length === 0) return { field: 'network.bridge', reason: `bridge ${choice.bridge} is not allowed; allowed: ${list}`, rule: 'network-not-allowed' };
  return { field: 'network.vlan', reason: `${choice.vlan === undefined ? 'untagged' : `VLAN ${choice.vlan}`} is not allowed on ${choice.bridge}; allowed: ${list}`, rule: 'network-not-allowed' };
}

const describeChoice = (c: NetworkChoice) => (c.vlan === undefined ? `${c.bridge} untagged` : `${c.bridge} VLAN ${c.vlan}`);
