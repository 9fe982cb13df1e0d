import { defaultRequestPolicy } from '../../src/domain/requestPolicyRules';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { approveUpdate, buildStatusQuery, statusQuery, type UpdateResult } from '../../src/contracts/messages';
import type { BuildStage, BuildTask, RequestRecord, RequestStatus, VmRequestInput } from '../../src/contracts/types';
import { buildWorkflowId, requestWorkflowId } from '../../src/contracts/workflowIds';
import { requestStart } from '../../src/contracts/searchAttributes';
import { deviceRequestSchema, type DeviceRequest } from '../../src/domain/deviceRequest';
import type { vmRequest } from '../../src/workflows';
import { waitFor } from './waitFor';

/**
 * How a workflow test drives a request over the Temporal client: start it (waiting for approval, or approved), wait
 * for a status or a build stage, read its record. The one place that knows the request's workflow type, ids, update
 * and queries, so a test reads as what it checks.
 */
export interface DrivenRequest {
  readonly serial: string;
  /** For what the driver does not say: other updates, `result()`, `describe()`. */
  readonly handle: WorkflowHandle<typeof vmRequest>;
  /** The request's record as its workflow answers it now. */
  record(): Promise<RequestRecord>;
  /**
   * Waits until the request is in `wanted` (one status, or the first of several) and returns that record. A request
   * that fails while another status is awaited fails the wait at once, with its build's error.
   */
  waitForStatus(wanted: RequestStatus | readonly RequestStatus[], opts?: WaitOptions): Promise<RequestRecord>;
  /** Waits until build `attempt` (default 1) is at `stage`. */
  waitForBuildStage(stage: BuildStage, opts?: WaitOptions & { attempt?: number }): Promise<BuildTask>;
  approve(by?: string): Promise<UpdateResult>;
}

export interface WaitOptions {
  timeoutMs?: number;
  everyMs?: number;
}

/** What a start adds to the request: the policy fixed at submission, a resumed record. */
/** The workflow's input beside the request; the policy defaults to the one the API would fix without configuration. */
export type StartOptions = Partial<Omit<VmRequestInput, 'request'>>;

export interface RequestDriver {
  /** Starts `request`'s workflow; it waits for approval (Pending). */
  startPending(request: DeviceRequest, opts?: StartOptions): Promise<DrivenRequest>;
  /** Starts `request`'s workflow and approves it: the build starts when the period does. */
  startApproved(request: DeviceRequest, opts?: StartOptions & { by?: string }): Promise<DrivenRequest>;
  /** A request already started (by the API, the CLI, an earlier step). */
  existing(serial: string): DrivenRequest;
}

const DAY = 24 * 3600_000;

/**
 * A valid request whose period began a minute before `nowMs` (a test server's clock where time skips) and lasts
 * `periodDays`: tests change one thing at a time from here. For the API's wire form, see `validRequestBody`.
 */
export function deviceRequest(serial: string, overrides: Partial<DeviceRequest> & { periodDays?: number } = {}, nowMs = Date.now()): DeviceRequest {
  const { periodDays = 30, ...rest } = overrides;
  const start = nowMs - 60_000;
  return deviceRequestSchema.parse({
    serial,
    name: 'lab',
    org: 'Acme Corp',
    requester: 'rita@acme.example',
    consultants: ['alice@consultancy.example'],
    period: { start: new Date(start).toISOString(), end: new Date(start + periodDays * DAY).toISOString() },
    cores: 2,
    memoryMiB: 2048,
    ...rest,
  });
}

/** Requests over `client`, their workflows on `taskQueue`. */
export function requestDriver(client: Client, taskQueue: string): RequestDriver {
  const driven = (serial: string, handle: WorkflowHandle<typeof vmRequest>): DrivenRequest => ({
    serial,
    handle,
    record: () => handle.query(statusQuery),
    async waitForStatus(wanted, opts = {}) {
      const statuses: readonly RequestStatus[] = typeof wanted === 'string' ? [wanted] : wanted;
      const seen = await waitFor(
        `request ${serial} ${statuses.join(' or ')}`,
        async () => {
          const r = await handle.query(statusQuery);
          return statuses.includes(r.status) || r.status === 'Failed' ? r : undefined;
        },
        opts.timeoutMs,
        opts.everyMs,
      );
      if (!statuses.includes(seen.status)) throw new Error(`request ${serial} failed while waiting for ${statuses.join(' or ')}: ${JSON.stringify(seen.build)}`);
      return seen;
    },
    waitForBuildStage(stage, opts = {}) {
      const build = client.workflow.getHandle(buildWorkflowId(serial, opts.attempt ?? 1));
      return waitFor(
        `build ${opts.attempt ?? 1} of ${serial} at ${stage}`,
        async () => {
          const b = await build.query(buildStatusQuery);
          return b.stage === stage ? b : undefined;
        },
        opts.timeoutMs,
        opts.everyMs,
      );
    },
    approve: (by = 'admin') => handle.executeUpdate(approveUpdate, { args: [{ by }] }),
  });

  const startPending = async (request: DeviceRequest, opts: StartOptions = {}) => {
    // As the API starts it (its revision, its search attributes), with what the test adds.
    const { args, typedSearchAttributes } = requestStart(request, defaultRequestPolicy);
    const handle = await client.workflow.start<typeof vmRequest>('vmRequest', {
      workflowId: requestWorkflowId(request.serial),
      taskQueue,
      args: [{ ...args[0], ...opts }],
      typedSearchAttributes,
    });
    return driven(request.serial, handle);
  };

  return {
    startPending,
    async startApproved(request, { by, ...opts } = {}) {
      const r = await startPending(request, opts);
      await r.approve(by);
      return r;
    },
    existing: (serial) => driven(serial, client.workflow.getHandle<typeof vmRequest>(requestWorkflowId(serial))),
  };
}
