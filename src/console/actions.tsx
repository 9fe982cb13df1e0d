import type { RequestStatus, UpdateAnswer } from './api';
import type { Role } from './session';
import { BUILDING, decide } from '../domain/requestLifecycle';
import { formatDateTime } from './format';

/**
 * Which actions the console offers, mirroring the API's roles (src/api/auth/permissions.ts) and asking the request's
 * lifecycle table (the one the workflow's validators ask) in which states. Only an offer: the API and the workflow
 * decide, and their refusal is shown as they word it.
 */
export type ActionName = 'approve' | 'reject' | 'cancel' | 'rebuild' | 'extend' | 'complete';

const roles: Record<ActionName, Role[]> = {
  approve: ['admin', 'operator'],
  reject: ['admin', 'operator'],
  cancel: ['admin', 'operator'],
  rebuild: ['admin', 'operator'],
  extend: ['requester', 'admin', 'operator'],
  complete: ['requester', 'admin', 'operator'],
};

export const actionOrder: ActionName[] = ['approve', 'reject', 'rebuild', 'extend', 'cancel', 'complete'];

export function allowedActions(role: Role, status: RequestStatus): ActionName[] {
  return actionOrder.filter((a) => roles[a].includes(role) && decide(status, a).allowed);
}

export const actionText: Record<ActionName, { label: string; title: string; explain: string; danger?: boolean }> = {
  approve: { label: 'Approve', title: 'Approve this request?', explain: 'The VM is built at the start of its period.' },
  reject: { label: 'Reject', title: 'Reject this request?', explain: 'The requester sees your reason on the timeline. This cannot be undone.', danger: true },
  cancel: { label: 'Cancel build', title: 'Cancel the build?', explain: 'Whatever the build has made so far is removed.', danger: true },
  rebuild: { label: 'Rebuild', title: 'Build the VM again?', explain: 'A new build attempt starts now.' },
  extend: { label: 'Extend', title: 'Extend the lease?', explain: 'Choose the new end of the period.' },
  complete: {
    label: 'Complete',
    title: 'Complete this request now?',
    explain: 'The VM, its cloud-init snippet and its VPN access are removed. This cannot be undone.',
    danger: true,
  },
};

/** What an action did, in the answer's words: `VM-7K2Q9 is Cancelling; build 1 cancelling.` */
export function answerText(a: UpdateAnswer): string {
  const parts = [`${a.serial} is ${a.status}`];
  if (a.build) parts.push(`build ${a.build.attempt} ${a.build.state}`);
  if (a.builds_at) parts.push(`it will be built ${formatDateTime(a.builds_at)}`);
  if (a.period_end) parts.push(`the lease now ends ${formatDateTime(a.period_end)}`);
  return `${parts.join('; ')}.`;
}

/** Statuses the request moves out of by itself: the page keeps watching while it is in one. */
export const transitional: RequestStatus[] = ['Approved', ...BUILDING, 'Cancelling', 'Completing'];
