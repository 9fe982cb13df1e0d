import type { RequestPolicy } from './requestPolicy';

// What a request's policy decides, without the zod schema that parses it at the edges: the workflow bundle imports this
// module, and the SDK evaluates every module of that bundle once per workflow.

export const defaultRequestPolicy: RequestPolicy = { pendingExpiryHours: 72, maxLeaseDays: 90, endNoticeHours: 24 };

/**
 * What a policy that does not say gives (REQUEST_SNAPSHOT_LIMIT, REQUEST_SHUTDOWN_TIMEOUT_S, REQUEST_REVEAL_REFETCH_MIN):
 * written here only. The re-fetch window is short: long enough to ask again after an answer lost in transit, short
 * enough that the logins do not wait in the request for anyone who got hold of the consultant's key.
 */
export const policyDefaults = { snapshotLimit: 3, shutdownTimeoutSeconds: 120, revealRefetchMinutes: 10 } as const;
/** How many snapshots of its VM a request may hold at once. */
export const snapshotLimitOf = (policy: Pick<RequestPolicy, 'snapshotLimit'>) => policy.snapshotLimit ?? policyDefaults.snapshotLimit;
/** How long a shutdown (a day-2 one, or the cleanup's) gives the guest before it is stopped. */
export const shutdownTimeoutOf = (policy: Pick<RequestPolicy, 'shutdownTimeoutSeconds'>) => policy.shutdownTimeoutSeconds ?? policyDefaults.shutdownTimeoutSeconds;
/** Minutes the consultant who revealed the logins may fetch them again (an answer lost in transit) before they are shredded. */
export const revealRefetchMinutesOf = (policy: Pick<RequestPolicy, 'revealRefetchMinutes'>) => policy.revealRefetchMinutes ?? policyDefaults.revealRefetchMinutes;

/** Whether the policy approves this request without an admin, and why. */
export function autoApprovalReason(policy: Pick<RequestPolicy, 'autoApprove'>, r: { org: string; cores: number; memoryMiB: number }): string | undefined {
  const a = policy.autoApprove;
  if (!a) return undefined;
  if (a.orgs.includes(r.org)) return `auto-approved: org ${r.org} is trusted`;
  if (a.maxCores > 0 && a.maxMemoryMiB > 0 && r.cores <= a.maxCores && r.memoryMiB <= a.maxMemoryMiB) {
    return `auto-approved: ${r.cores} cores / ${r.memoryMiB} MiB is within ${a.maxCores} cores / ${a.maxMemoryMiB} MiB`;
  }
  return undefined;
}

const HOUR = 3600_000;
const DAY = 24 * HOUR;

/**
 * How far in the past a period may start when it is submitted: a client's "now" that arrives a little late, a portal
 * redelivering a webhook, a period that began this morning. Such a request is built as soon as it is approved.
 */
export const PERIOD_START_TOLERANCE_HOURS = 24;

/** A rule of the policy a period breaks: the field at fault, the rule's name, and what to do. */
export interface PeriodRefusal {
  field: 'period.start' | 'period.end';
  rule: 'end-in-past' | 'end-before-start' | 'start-in-past' | 'max-lease';
  reason: string;
}

/**
 * The lease rules for a period's end, the one source for both a submission (checked at intake) and an extension (the
 * workflow's update validator): in the future, after the start, and at most `maxLeaseDays` from the start.
 */
export function leaseEndRefusal(policy: RequestPolicy, start: string, end: string, now: number): PeriodRefusal | undefined {
  const s = Date.parse(start);
  const e = Date.parse(end);
  if (e <= now) return { field: 'period.end', rule: 'end-in-past', reason: `${end} is in the past: a lease must end in the future` };
  if (e <= s) return { field: 'period.end', rule: 'end-before-start', reason: `${end} is not after the period's start ${start}` };
  if (e - s > policy.maxLeaseDays * DAY) {
    const days = Math.ceil((e - s) / DAY);
    return { field: 'period.end', rule: 'max-lease', reason: `the lease would last ${days} days from its start; the policy allows at most ${policy.maxLeaseDays} days (maximum lease)` };
  }
  return undefined;
}

/** Every policy rule a new request's period breaks (empty: none), checked at submission, class and webhook intake. */
export function periodRefusals(policy: RequestPolicy, period: { start: string; end: string }, now: number): PeriodRefusal[] {
  const out: PeriodRefusal[] = [];
  if (Date.parse(period.start) < now - PERIOD_START_TOLERANCE_HOURS * HOUR) {
    out.push({
      field: 'period.start',
      rule: 'start-in-past',
      reason: `${period.start} is more than ${PERIOD_START_TOLERANCE_HOURS} h in the past: a period may start at most ${PERIOD_START_TOLERANCE_HOURS} h ago (use now, or a later date)`,
    });
  }
  const end = leaseEndRefusal(policy, period.start, period.end, now);
  if (end) out.push(end);
  return out;
}
