import { ApplicationFailure } from '@temporalio/activity';
import { fetch } from 'undici';
import { ErrorType } from '../../errors';

export interface LeaseNoticeInput {
  url: string;
  serial: string;
  name: string;
  org: string;
  consultants: string[];
  periodEnd: string;
}

/**
 * Tells whoever the operator configured (a chat webhook, a ticket system) that a lease ends soon. JSON POST with a
 * timeout; a 4xx is final (the receiver refuses the notice), anything else is retried by the activity's policy.
 */
export function leaseNoticeActivities() {
  return {
    async notifyLeaseEnding(input: LeaseNoticeInput): Promise<void> {
      const { url, ...notice } = input;
      let res;
      try {
        res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ event: 'lease-ending', ...notice }),
          signal: AbortSignal.timeout(10_000),
        });
      } catch (err) {
        throw ApplicationFailure.create({ type: 'NoticeTransient', message: `lease notice for ${input.serial} to ${new URL(url).origin}: ${(err as Error).message}` });
      }
      await res.text(); // drain the body so the connection can be reused
      if (res.ok) return;
      throw ApplicationFailure.create({
        type: res.status < 500 && res.status !== 429 ? ErrorType.InvalidRequest : 'NoticeTransient',
        nonRetryable: res.status < 500 && res.status !== 429,
        message: `lease notice for ${input.serial}: ${new URL(url).origin} answered ${res.status}; check REQUEST_NOTICE_WEBHOOK_URL`,
      });
    },
  };
}
