import { z } from 'zod';
import type { ChoiceRefusal } from './choiceRules';

/** A Linux bridge (or SDN VNet) name as Proxmox takes it in `net0`'s `bridge=`. */
export const bridgeNameSchema = z.string().regex(/^[A-Za-z][A-Za-z0-9_.-]{0,14}$/, 'a bridge name (e.g. vmbr0): a letter, then up to 14 letters, digits, _ . -');

export const vlanSchema = z.number().int().min(1).max(4094);

/** The network a request asks for its VM's first NIC: a bridge, and a VLAN tag on it (absent: untagged). */
export const networkChoiceSchema = z.strictObject({ bridge: bridgeNameSchema, vlan: vlanSchema.optional() });

export type NetworkChoice = z.infer<typeof networkChoiceSchema>;

/** One entry of the allowed list: a bridge, untagged or with the VLANs in [min, max]. */
export interface AllowedNetwork {
  bridge: string;
  vlans?: { min: number; max: number };
}

/**
 * `vmbr0,vmbr1:100,vmbr1:200-299` (PVE_NETWORKS): `vmbr0` untagged, `vmbr1` with VLAN 100 or any of 200-299. A
 * bridge a request may use untagged and tagged is listed twice (`vmbr1,vmbr1:100`).
 */
export function parseAllowedNetworks(text: string): AllowedNetwork[] | { error: string } {
  const out: AllowedNetwork[] = [];
  for (const entry of text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^([^:]+)(?::(\d+)(?:-(\d+))?)?$/.exec(entry);
    const bridge = m && bridgeNameSchema.safeParse(m[1]);
    if (!m || !bridge?.success) return { error: `'${entry}' is not bridge, bridge:vlan or bridge:from-to (e.g. vmbr1:100-199)` };
    if (m[2] === undefined) {
      out.push({ bridge: m[1]! });
      continue;
    }
    const min = Number(m[2]);
    const max = m[3] === undefined ? min : Number(m[3]);
    if (!vlanSchema.safeParse(min).success || !vlanSchema.safeParse(max).success || max < min) return { error: `'${entry}': VLANs are 1-4094, from ≤ to` };
    out.push({ bridge: m[1]!, vlans: { min, max } });
  }
  return out;
}

export const describeNetwork = (n: AllowedNetwork) => (n.vlans ? `${n.bridge} VLAN ${n.vlans.min === n.vlans.max ? n.vlans.min : `${n.vlans.min}-${n.vlans.max}`}` : `${n.bridge} untagged`);

/** Why `choice` is not on the allowed list (rule network-not-allowed), or undefined when it is. */
export function networkRefusal(allowed: AllowedNetwork[], choice: NetworkChoice): ChoiceRefusal | undefined {
  const fits = (n: AllowedNetwork) => n.bridge === choice.bridge && (choice.vlan === undefined ? !n.vlans : !!n.vlans && choice.vlan >= n.vlans.min && choice.vlan <= n.vlans.max);
  if (allowed.some(fits)) return undefined;
  const onBridge = allowed.filter((n) => n.bridge === choice.bridge);
  const list = allowed.map(describeNetwork).join(', ') || 'none';
  if (onBridge.length === 0) return { field: 'network.bridge', reason: `bridge ${choice.bridge} is not allowed; allowed: ${list}`, rule: 'network-not-allowed' };
  return { field: 'network.vlan', reason: `${choice.vlan === undefined ? 'untagged' : `VLAN ${choice.vlan}`} is not allowed on ${choice.bridge}; allowed: ${list}`, rule: 'network-not-allowed' };
}
