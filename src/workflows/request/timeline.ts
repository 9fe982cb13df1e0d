import { upsertSearchAttributes } from '@temporalio/workflow';
import type { UpdateResult } from '../../contracts/messages';
import { after, type RequestAction, type RequestEvent } from '../../domain/requestLifecycle';
import { requestSearchAttributes } from '../../contracts/searchAttributes';
import { boundTimeline, clipped } from './bounds';
import type { VmRequest } from './request';

/** What these helpers need of the request: its serial and record. */
type Held = Pick<VmRequest, 'serial' | 'record'>;

const now = () => new Date().toISOString();

/** Something happened that does not change the status: on the timeline, with who did it, within its bounds (bounds.ts). */
export function note({ record }: Held, event: string, by?: string): void {
  record.timeline.push({ at: now(), event: clipped(event), ...(by ? { by } : {}) });
  boundTimeline(record.timeline);
}

/** The search attributes follow the record: called after every change an operator searches by. */
export function publish({ record }: Held): void {
  upsertSearchAttributes(requestSearchAttributes(record));
}

/**
 * The status change itself; the request's own `move` (request.ts) calls it and then checks its invariants. `published`
 * false: the caller knows another move follows in the same workflow task, which publishes for both.
 */
export function move(state: Held, event: RequestAction | RequestEvent, text: string, by?: string, published = true): void {
  state.record.status = after(state.record.status, event);
  note(state, text, by);
  if (published) publish(state);
}

/** The VM is gone (destroyed, vanished, never made): nothing in the record points at it. */
export function forgetVm({ record }: Held): void {
  for (const field of ['vmid', 'node', 'ip', 'vpnIp', 'vpnHostname', 'state'] as const) delete record.device[field];
  // Its snapshots went with it: a rebuilt VM starts with none.
  delete record.snapshots;
}

/** What an update did, as the request stands once it took effect: its status and the build it concerns. */
export function answer({ serial, record }: Held, extra: Partial<UpdateResult> = {}): UpdateResult {
  return {
    serial,
    status: record.status,
    ...(record.build ? { build: { attempt: record.build.attempt, state: record.build.state } } : {}),
    ...extra,
  };
}
