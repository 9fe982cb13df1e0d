import type { NetbirdClient, NetbirdPolicy } from '../clients/netbird';
import { DEVICE_GROUP_PREFIX, REQUEST_POLICY_PATTERN } from '../domain/deviceNames';
import { fail, pass, type Finding } from './finding';

/** NetBird's group of every peer of the account. */
const ALL_GROUP = 'All';

export interface PolicyExposure {
  policy: string;
  rule: string;
  /** What the rule opens, in an operator's words: `All may reach All, both ways`. */
  grants: string;
}

/**
 * The enabled accept rules that open pveflow's VMs beyond each request's own one-way policy: a rule whose sources
 * or destinations hold `All` or a device group (`device-<serial>`) lets other peers reach the VMs (the VMs are
 * destinations), or lets the VMs reach out (they are sources), or both. A new NetBird account's `Default` policy
 * (`All` to `All`, both ways) is the usual one. A request's own policy (`pveflow-<serial>-consultants-to-device`)
 * is exempt while it is one way into device groups only; if someone made it bidirectional, it is named too.
 */
export function policyExposures(policies: readonly NetbirdPolicy[]): PolicyExposure[] {
  const found: PolicyExposure[] = [];
  const opens = (name: string) => name === ALL_GROUP || name.startsWith(DEVICE_GROUP_PREFIX);
  for (const policy of policies) {
    if (!policy.enabled) continue;
    for (const rule of policy.rules) {
      if (!rule.enabled || rule.action !== 'accept') continue;
      const sources = (rule.sources ?? []).map((g) => g.name);
      const destinations = (rule.destinations ?? []).map((g) => g.name);
      if (!sources.some(opens) && !destinations.some(opens)) continue;
      const ownOneWay = REQUEST_POLICY_PATTERN.test(policy.name) && !rule.bidirectional && !sources.some(opens) && destinations.every((d) => d.startsWith(DEVICE_GROUP_PREFIX));
      if (ownOneWay) continue;
      const list = (names: string[]) => (names.length ? names.join(', ') : '(no group)');
      found.push({ policy: policy.name, rule: rule.name, grants: `${list(sources)} may reach ${list(destinations)}${rule.bidirectional ? ', both ways' : ''}` });
    }
  }
  return found;
}

/**
 * `pveflow doctor`'s NetBird policy check: pveflow promises that the listed consultants, and only they, reach a VM,
 * and that the VM reaches nobody; an account-wide policy over `All` or the device groups breaks that promise for
 * every VM at once. pveflow never deletes such a policy itself (it is the account's, not a request's): it says which
 * and what to change.
 */
export async function checkNetbirdPolicies(netbird: NetbirdClient): Promise<Finding> {
  const check = 'netbird.policies';
  let policies: NetbirdPolicy[];
  try {
    policies = await netbird.listPolicies();
  } catch (err) {
    return fail(check, `cannot list NetBird's policies: ${(err as Error).message}`, "give the token's user the admin role");
  }
  const exposures = policyExposures(policies);
  if (exposures.length === 0) return pass(check, `no enabled policy opens pveflow's VMs beyond their requests' own (${policies.length} policies)`);
  const named = [...new Set(exposures.map((e) => e.policy))];
  const what = exposures.map((e) => `'${e.policy}' (rule '${e.rule}': ${e.grants})`).join('; ');
  return fail(
    check,
    `${what}: with ${named.length > 1 ? 'these policies' : 'this policy'} enabled, peers beyond a request's consultants reach its VM, or the VM reaches out, whatever pveflow grants`,
    `in NetBird's dashboard, Access Control → Policies: delete or disable ${named.map((n) => `'${n}'`).join(', ')} (a new account's 'Default' lets every peer reach every peer), or narrow its groups so that neither 'All' nor a '${DEVICE_GROUP_PREFIX}…' group is among them; see docs/operations.md (NetBird)`,
  );
}
