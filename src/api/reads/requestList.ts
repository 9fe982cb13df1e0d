import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { decodeTypedSearchAttributes } from '@temporalio/common/lib/converter/payload-search-attributes';
import type { temporal } from '@temporalio/proto';
import { BuildStatusKey, ClassIdKey, ConsultantsKey, OrgKey, PeriodEndKey, PeriodStartKey, PveNodeKey, RequestStatusKey, SerialKey, VmIdKey, VmNameKey } from '../../contracts/searchAttributes';
import type { ApiContext } from '../http/context';
import type { ListQuery, RequestSummary } from '../../contracts/apiSchemas';
import { requestStatuses } from '../../contracts/types';
import { taskQueueClause } from '../../domain/instanceScope';

export interface RequestFilter {
  org?: string;
  status?: ListQuery['status'];
  consultant?: string;
  /** The members of one class. */
  class?: string;
  /** Period overlap: requests that end at or after `from` and start at or before `to`. */
  from?: string;
  to?: string;
}

/**
 * The visibility query for a filter. Values are already confined by the schemas to alphabets without quotes or
 * backslashes; `literal` refuses anything else rather than trying to escape it.
 */
export function visibilityQuery(f: RequestFilter, taskQueue: string): string {
  const clauses = ['WorkflowType = "vmRequest"', taskQueueClause(taskQueue)];
  if (f.org !== undefined) clauses.push(`${OrgKey.name} = ${literal(f.org)}`);
  if (f.status !== undefined) clauses.push(`${RequestStatusKey.name} = ${literal(f.status)}`);
  if (f.consultant !== undefined) clauses.push(`${ConsultantsKey.name} = ${literal(f.consultant)}`);
  if (f.class !== undefined) clauses.push(`${ClassIdKey.name} = ${literal(f.class)}`);
  // Inclusive bounds written as strict ones a millisecond out: the dev server's SQLite visibility compares stored
  // datetimes as text in its own format, so `<=` misses an exact match; our dates carry milliseconds at most.
  if (f.from !== undefined) clauses.push(`${PeriodEndKey.name} > ${literal(new Date(Date.parse(f.from) - 1).toISOString())}`);
  if (f.to !== undefined) clauses.push(`${PeriodStartKey.name} < ${literal(new Date(Date.parse(f.to) + 1).toISOString())}`);
  return clauses.join(' AND ');
}

function literal(value: string): string {
  if (/["'\\\n\r]/.test(value)) throw new Error(`refusing a visibility query value with quotes or backslashes: ${JSON.stringify(value)}`);
  return `"${value}"`;
}

/**
 * One page of requests, straight from Temporal's visibility (no second database): each row is built from the
 * workflow's search attributes, so a page costs one call however many requests it shows. The page token is
 * Temporal's own, carried opaque (base64url).
 */
export async function listRequests(ctx: ApiContext, filter: RequestFilter, page: { size: number; token?: Buffer }): Promise<{ items: RequestSummary[]; next_page_token?: string }> {
  const response = await ctx.temporal(() =>
    ctx.client.workflowService.listWorkflowExecutions({
      namespace: ctx.client.options.namespace,
      query: visibilityQuery(filter, ctx.taskQueue),
      pageSize: page.size,
      nextPageToken: page.token,
    }),
  );
  const items = (response.executions ?? []).flatMap((e) => summaryOf(e) ?? []);
  const next = response.nextPageToken?.length ? encodePageToken(Buffer.from(response.nextPageToken), ctx.pageTokenKey) : undefined;
  return next ? { items, next_page_token: next } : { items };
}

/** What the page tokens' MAC key is derived for (CodecSetup.deriveKey): one purpose, one key. */
export const PAGE_TOKEN_KEY_PURPOSE = 'api page tokens';

/**
 * The key of the page tokens' MAC when no payload key ring is configured to derive one from: this process's own, so
 * a token holds while the process that handed it out runs (one more reason to configure PVEFLOW_CODEC_KEYS with
 * several API processes).
 */
export const processPageTokenKey = (): Buffer => randomBytes(32);

/**
 * Temporal's page token, carried opaque behind a MAC keyed with a secret of the API's. A token that is not one this
 * API handed out is caught here (400) instead of reaching the server, which answers garbage with an error the client
 * retries until its deadline; an unkeyed checksum would not do, as anyone can compute one.
 */
export function encodePageToken(raw: Buffer, key: Buffer): string {
  return Buffer.concat([mac(raw, key), raw]).toString('base64url');
}

/** The raw token, or undefined when `token` was not made by encodePageToken with `key`. */
export function decodePageToken(token: string, key: Buffer): Buffer | undefined {
  const bytes = Buffer.from(token, 'base64url');
  if (bytes.length <= MAC_BYTES) return undefined;
  const raw = bytes.subarray(MAC_BYTES);
  return timingSafeEqual(mac(raw, key), bytes.subarray(0, MAC_BYTES)) ? raw : undefined;
}

const MAC_BYTES = 16;
const mac = (raw: Buffer, key: Buffer) => createHmac('sha256', key).update(raw).digest().subarray(0, MAC_BYTES);

function summaryOf(e: temporal.api.workflow.v1.IWorkflowExecutionInfo): RequestSummary | undefined {
  const sa = decodeTypedSearchAttributes(e.searchAttributes?.indexedFields);
  const serial = sa.get(SerialKey);
  const org = sa.get(OrgKey);
  const status = sa.get(RequestStatusKey);
  if (!serial || !org || !(requestStatuses as readonly string[]).includes(status ?? '')) return undefined; // not one of ours
  const start = sa.get(PeriodStartKey);
  const end = sa.get(PeriodEndKey);
  const closedAt = timestampOf(e.closeTime);
  return {
    serial,
    ...optional('name', sa.get(VmNameKey)),
    org,
    status: status as RequestSummary['status'],
    ...optional('build_status', sa.get(BuildStatusKey)),
    ...optional('vm_id', sa.get(VmIdKey)),
    ...optional('node', sa.get(PveNodeKey)),
    ...optional('class', sa.get(ClassIdKey)),
    consultants: sa.get(ConsultantsKey) ?? [],
    period: { ...optional('start', start?.toISOString()), ...optional('end', end?.toISOString()) },
    submitted_at: timestampOf(e.startTime) ?? '',
    ...optional('closed_at', closedAt),
    open: !closedAt,
  };
}

function optional<K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, V>);
}

function timestampOf(t: temporal.api.workflow.v1.IWorkflowExecutionInfo['startTime']): string | undefined {
  if (!t?.seconds) return undefined;
  return new Date(Number(t.seconds) * 1000 + Math.floor((t.nanos ?? 0) / 1e6)).toISOString();
}
