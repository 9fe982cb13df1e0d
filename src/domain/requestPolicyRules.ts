import type { RequestPolicy } from './requestPolicy';

// What a request's policy decides, without the zod schema that parses it at the edges: the workflow bundle imports this
// module, and the SDK evaluates every module of that bundle once per workflow.

export const defaultRequestPolicy: RequestPolicy = { pendingExpiryHours: 72, maxLeaseDays: 90, endNoticeHours: 24 };

/** Whether the policy approves this request without an admin, and why. */
export function autoApprovalReason(policy: RequestPolicy, r: { org: string; cores: number; memoryMiB: number }): string | undefined {
  const a = policy.autoApprove;
  if (!a) return undefined;
  if (a.orgs.includes(r.org)) return `auto-approved: org ${r.org} is trusted`;
  if (a.maxCores > 0 && a.maxMemoryMiB > 0 && r.cores <= a.maxCores && r.memoryMiB <= a.maxMemoryMiB) {
    return `auto-approved: ${r.cores} cores / ${r.memoryMiB} MiB is within ${a.maxCores} cores / ${a.maxMemoryMiB} MiB`;
  }
  return undefined;
}
