import type { RequestStatus } from '../api';

const tones: Record<RequestStatus, string> = {
  Pending: 'waiting',
  Approved: 'info',
  Imaging: 'progress',
  Provisioning: 'progress',
  Configuring: 'progress',
  Fulfilled: 'success',
  Failed: 'danger',
  Rejected: 'danger',
  Expired: 'muted',
  Cancelled: 'muted',
  Cancelling: 'progress',
  Completing: 'progress',
  Completed: 'muted',
};

export function StatusBadge({ status }: { status: RequestStatus }) {
  return <span class={`badge badge-${tones[status] ?? 'muted'}`}>{status}</span>;
}
