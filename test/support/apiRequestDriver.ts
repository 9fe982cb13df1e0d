import assert from 'node:assert/strict';
import type { RequestStatus } from '../../src/contracts/types';
import type { WaitOptions } from './requestDriver';
import { validRequestBody } from './requests';
import { waitFor } from './waitFor';

/** Who makes a call: the driver asks the test's own HTTP helper to make it as one of these. */
export type ApiActor = 'submitter' | 'approver' | 'reader';

/** An answer of the API as a test's HTTP helper returns it (JSON bodies parsed). */
export interface ApiAnswer {
  status: number;
  /** The API's JSON, read field by field by the tests. */
  body: any;
}

/** The test's own HTTP helper: its base URL, keys and checks stay the test's. */
export type ApiCall = (method: string, path: string, as: ApiActor, body?: unknown) => Promise<ApiAnswer>;

/** A request as an HTTP API test drives it: the same verbs as the Temporal driver's, over the API. */
export interface ApiDrivenRequest {
  readonly serial: string;
  /** The answer to the submission (201). */
  readonly created: ApiAnswer;
  /** GET /api/device_requests/{serial}, answered 200. */
  record(as?: ApiActor): Promise<ApiAnswer['body']>;
  /** Waits until the API says the request is in `wanted`; a Failed request fails the wait at once. */
  waitForStatus(wanted: RequestStatus | readonly RequestStatus[], opts?: WaitOptions & { as?: ApiActor }): Promise<ApiAnswer['body']>;
  /** POST /approve as the approver; the answer, whatever it is (tests assert it). */
  approve(as?: ApiActor): Promise<ApiAnswer>;
}

export interface ApiRequestDriver {
  /** Submits `body` (default: a valid request starting now) as the submitter; asserts it was created. */
  startPending(body?: Record<string, unknown>): Promise<ApiDrivenRequest>;
  /** Submits and approves it; asserts both took effect. */
  startApproved(body?: Record<string, unknown>): Promise<ApiDrivenRequest>;
  /** Submits a class of `count` identical requests (POST /api/classes); asserts it was created. */
  startClass(body: Record<string, unknown>, count: number): Promise<{ classId: string; created: ApiAnswer; requests: ApiDrivenRequest[] }>;
  /** A request submitted some other way (the CLI, the console, a class). */
  existing(serial: string): ApiDrivenRequest;
}

/** For a test with one key and no helper of its own: every call made with `key` against `base` (read when called). */
export function keyedApiCall(base: () => string, key: string): ApiCall {
  return async (method, path, _as, body) => {
    const res = await fetch(`${base()}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    return { status: res.status, body: text && /json/.test(res.headers.get('content-type') ?? '') ? JSON.parse(text) : text };
  };
}

export function apiRequestDriver(call: ApiCall): ApiRequestDriver {
  const path = (serial: string) => `/api/device_requests/${serial}`;
  const driven = (serial: string, created: ApiAnswer): ApiDrivenRequest => {
    const record = async (as: ApiActor = 'reader') => {
      const r = await call('GET', path(serial), as);
      assert.equal(r.status, 200, `GET ${path(serial)}: ${JSON.stringify(r.body)}`);
      return r.body;
    };
    return {
      serial,
      created,
      record,
      async waitForStatus(wanted, opts = {}) {
        const statuses: readonly string[] = typeof wanted === 'string' ? [wanted] : wanted;
        const seen = await waitFor(
          `request ${serial} ${statuses.join(' or ')}`,
          async () => {
            const r = await record(opts.as);
            return statuses.includes(r.status) || r.status === 'Failed' ? r : undefined;
          },
          opts.timeoutMs,
          opts.everyMs,
        );
        if (!statuses.includes(seen.status)) throw new Error(`request ${serial} failed while waiting for ${statuses.join(' or ')}: ${JSON.stringify(seen.build)}`);
        return seen;
      },
      approve: (as = 'approver') => call('POST', `${path(serial)}/approve`, as, {}),
    };
  };

  const startPending = async (body: Record<string, unknown> = validRequestBody()) => {
    const created = await call('POST', '/api/device_requests', 'submitter', body);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    return driven(String(created.body.serial), created);
  };

  return {
    startPending,
    async startApproved(body) {
      const r = await startPending(body);
      const approved = await r.approve();
      assert.equal(approved.status, 200, JSON.stringify(approved.body));
      return r;
    },
    async startClass(body, count) {
      const created = await call('POST', '/api/classes', 'submitter', { ...body, count });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const requests = (created.body.requests as Array<{ serial: string }>).map((r) => driven(r.serial, created));
      return { classId: String(created.body.class), created, requests };
    },
    existing: (serial) => driven(serial, { status: 0, body: undefined }),
  };
}
