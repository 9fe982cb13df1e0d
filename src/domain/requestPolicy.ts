import { z } from 'zod';

/**
 * The rules a request lives by, fixed when it is submitted (from configuration) and carried in its workflow input,
 * so that changing the configuration never changes a request already in flight.
 */
export const requestPolicySchema = z.object({
  /** A request nobody approves within this time expires. */
  pendingExpiryHours: z.number().positive(),
  /** The longest period a request may have, extensions included. */
  maxLeaseDays: z.number().positive(),
  /** How long before the period's end the lease notice goes out (0: no notice). */
  endNoticeHours: z.number().min(0),
  /** Where the lease notice is POSTed. */
  noticeWebhookUrl: z.url().optional(),
  /** Requests approved without an admin: from these orgs, or at most this size. */
  autoApprove: z.object({ orgs: z.array(z.string()), maxCores: z.number().int().min(0), maxMemoryMiB: z.number().int().min(0) }).optional(),
  /** How many snapshots of its VM a request may hold at once (day-2 operations); absent: policyDefaults'. */
  snapshotLimit: z.number().int().min(0).optional(),
  /** How long a shutdown (day-2, or the cleanup's) or reboot gives the guest before pveflow stops it; absent: policyDefaults'. */
  shutdownTimeoutSeconds: z.number().int().positive().optional(),
  /** How long the consultant who revealed the logins may fetch them again before they are shredded (0: never); absent: policyDefaults'. */
  revealRefetchMinutes: z.number().int().min(0).optional(),
});

export type RequestPolicy = z.infer<typeof requestPolicySchema>;
