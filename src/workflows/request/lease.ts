import { failureMessage } from '../failureMessage';
import { allHandlersFinished, condition, continueAsNew, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { createActivities } from '../../activities';
import { cleanup, notedCall } from '../activityOptions';
import type { vmRequest } from '../vmRequest';
import { fitForCarrying } from './bounds';
import { refetchClosesAt, shredRefetchable } from './credentials';
import { note } from './timeline';
import type { VmRequest } from './request';

const notify = proxyActivities<ReturnType<typeof createActivities>>(notedCall);
const follow = proxyActivities<ReturnType<typeof createActivities>>(cleanup);

const HOUR = 3600_000;

/**
 * Fulfilled: wait for the period's end (an extension re-arms the wait), sending the lease notice before it and moving
 * the cloud-init snippet after a migrated VM, until a completion or a vanished VM. A long lease continues as new so
 * that its history stays small.
 */
export async function holdLease(state: VmRequest): Promise<void> {
  const { record, policy, serial } = state;
  const over = () => state.pending('complete') !== undefined || state.pending('vmVanished') !== undefined;
  for (;;) {
    if (over()) return;
    const end = record.request.period.end;
    const untilEnd = Date.parse(end) - Date.now();
    if (untilEnd <= 0) return;
    const noticeDue = policy.noticeWebhookUrl && policy.endNoticeHours > 0 && record.noticeSentFor !== end;
    const untilNotice = untilEnd - policy.endNoticeHours * HOUR;
    if (noticeDue && untilNotice <= 0) {
      record.noticeSentFor = end;
      await notify
        .notifyLeaseEnding({ url: policy.noticeWebhookUrl!, serial, name: record.request.name, org: record.request.org, consultants: record.request.consultants, periodEnd: end })
        .then(() => note(state, `lease notice sent: ends ${end}`))
        .catch((err: Error) => note(state, `lease notice could not be sent: ${failureMessage(err)}`));
      continue;
    }
    // Revealed logins held for a re-fetch (credentials.ts) are shredded when their window closes.
    const shredAt = refetchClosesAt(state);
    if (shredAt !== undefined && shredAt <= Date.now()) {
      await shredRefetchable(state);
      continue;
    }
    const move = state.snippetMoves.shift();
    if (move) {
      // A move about a VM this request no longer has (rebuilt since) would carry the new VM's snippet off.
      if (move.vmid === record.device.vmid) await followVm(state, move.from, move.to);
      continue;
    }
    if (workflowInfo().continueAsNewSuggested) {
      // A `complete` handler waits for the completion to start: it must not hold up the lease it ends.
      await condition(() => allHandlersFinished() || over());
      if (over()) continue;
      fitForCarrying(record);
      await continueAsNew<typeof vmRequest>({ request: record.request, policy, resumed: record, resumedCredentials: state.credentials, ...(state.revision > 1 ? { revision: state.revision } : {}) });
    }
    const wake = Math.min(noticeDue ? untilNotice : untilEnd, shredAt === undefined ? Infinity : shredAt - Date.now());
    await condition(() => over() || state.snippetMoves.length > 0 || record.request.period.end !== end || refetchClosesAt(state) !== shredAt, wake);
  }
}

/** The VM migrated (by an operator or HA): its cloud-init snippet must be on its new node for it to start there. */
async function followVm(state: VmRequest, from: string, to: string): Promise<void> {
  const { serial, record } = state;
  await follow
    .moveSnippet({ serial, name: record.request.name, from, to })
    .then((r) => note(state, r === 'absent' ? `no cloud-init snippet on ${from} to move to ${to}` : `cloud-init snippet moved from ${from} to ${to}`))
    .catch((err: Error) => note(state, `cloud-init snippet could not follow the VM from ${from} to ${to}: ${failureMessage(err)}; the VM cannot start on ${to} until it is there (completion removes it wherever it is)`));
}
