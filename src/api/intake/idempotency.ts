import { createHash } from 'node:crypto';
import type { Request } from 'express';
import { z } from 'zod';
import type { Principal } from '../auth/apiKeys';
import { IDEMPOTENCY_HEADER, idempotencyHeaders, type CreateDeviceRequestBody } from '../../contracts/apiSchemas';

/**
 * `Idempotency-Key` on a submission: the caller's own token for "this one request", so that retrying after a lost
 * answer (a timeout, a 504, a dropped connection) finds the request the first try created instead of making a second.
 * Same idea as the webhook's delivery id: the serial is derived from the key, the workflow id from the serial, and
 * Temporal refuses a second workflow with that id.
 */
export type IdempotencyKeyInput = { key: string | undefined } | { error: z.ZodError };

export function idempotencyKeyOf(req: Request): IdempotencyKeyInput {
  const parsed = idempotencyHeaders.safeParse({ [IDEMPOTENCY_HEADER]: req.get(IDEMPOTENCY_HEADER) });
  return parsed.success ? { key: parsed.data[IDEMPOTENCY_HEADER] } : { error: parsed.error };
}

/**
 * Whose keys these are: an org's keys share one space (a retry from another key of the same org still finds the
 * request), an operator's are its own. Two orgs never meet, even with the same key.
 */
export function idempotencyScope(p: Principal): string {
  return p.role === 'operator' ? `key:${p.id}` : `org:${p.org}`;
}

/** What the request's memo keeps to recognise a retry: digests only, neither the key nor the body itself. */
export interface IdempotencyMemo extends Record<string, string> {
  idempotencySha256: string;
  bodySha256: string;
}

export function idempotencyMemo(scope: string, key: string, body: CreateDeviceRequestBody): IdempotencyMemo {
  return {
    idempotencySha256: sha256(`${scope}\n${key}`),
    // The parsed body (defaults filled in, keys sorted): `"cores": 2` and no `cores` at all are the same request.
    bodySha256: sha256(canonicalJson(body)),
  };
}

/** What an existing request's memo says about a submission that landed on its serial. */
export function compareWithExisting(memo: Record<string, unknown> | undefined, ours: IdempotencyMemo): 'same request' | 'other body' | 'not ours' {
  if (memo?.idempotencySha256 !== ours.idempotencySha256) return 'not ours';
  return memo.bodySha256 === ours.bodySha256 ? 'same request' : 'other body';
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}
