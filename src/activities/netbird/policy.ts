import type { NetbirdClient, NetbirdPolicy, PolicyRequest } from '../../clients/netbird';

/**
 * The one policy of a request: a single one-way rule from the consultants' standing groups to `device-<id>`.
 * `bidirectional: false` is the point: the consultants' machines may open connections to the VM, the VM may open
 * none back.
 */
export function accessPolicy(p: { name: string; description: string; sourceGroupIds: string[]; deviceGroupId: string }): PolicyRequest {
  return {
    name: p.name,
    description: p.description,
    enabled: true,
    rules: [
      {
        name: p.name,
        enabled: true,
        action: 'accept',
        bidirectional: false,
        protocol: 'all',
        sources: [...new Set(p.sourceGroupIds)],
        destinations: [p.deviceGroupId],
      },
    ],
  };
}

/** Whether a policy in NetBird grants exactly what `wanted` says: no more rules, no other groups, no way back. */
export function grantsExactly(found: NetbirdPolicy, wanted: PolicyRequest): boolean {
  const [rule, ...more] = found.rules;
  const [want] = wanted.rules;
  if (!rule || !want || more.length > 0 || !found.enabled) return false;
  const ids = (groups: Array<{ id: string }> | null | undefined) =>
    (groups ?? [])
      .map((g) => g.id)
      .sort()
      .join(',');
  return (
    rule.enabled &&
    rule.action === want.action &&
    rule.bidirectional === want.bidirectional &&
    rule.protocol === want.protocol &&
    !rule.ports?.length &&
    !(rule as { port_ranges?: unknown[] | null }).port_ranges?.length &&
    ids(rule.sources) === [...want.sources].sort().join(',') &&
    ids(rule.destinations) === [...want.destinations].sort().join(',')
  );
}

/**
 * Makes NetBird hold exactly one policy named `wanted.name`, granting exactly `wanted`: created when absent,
 * rewritten when someone (or an older pveflow) changed its rules, duplicates from a crashed attempt deleted.
 */
export async function ensurePolicy(netbird: NetbirdClient, wanted: PolicyRequest): Promise<NetbirdPolicy> {
  const [first, ...duplicates] = (await netbird.listPolicies()).filter((p) => p.name === wanted.name);
  for (const extra of duplicates) await netbird.deletePolicy(extra.id);
  if (!first) return netbird.createPolicy(wanted);
  if (grantsExactly(first, wanted)) return first;
  const keepRuleId = first.rules[0]?.id;
  return netbird.updatePolicy(first.id, {
    ...wanted,
    rules: wanted.rules.map((r) => ({ ...r, ...(keepRuleId && { id: keepRuleId }) })),
  });
}
