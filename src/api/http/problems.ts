import type { Response } from 'express';
import type { z } from 'zod';
import { describeExcess, type QuotaExcess } from '../../domain/quotas';

/** Bad input: 400 with each field and the reason. Nothing was started or changed. */
export function badRequest(res: Response, error: z.ZodError, where: 'body' | 'path' | 'query' | 'headers' = 'body', rename: (field: string) => string = (f) => f): void {
  const issues = error.issues.flatMap((i) => {
    const at = i.path.map(String);
    // An unknown field is named itself, so the caller sees which one to drop (a typo, or a setting we don't take).
    if (i.code === 'unrecognized_keys') return i.keys.map((k) => ({ field: rename([...at, k].join('.')), reason: 'unknown field' }));
    // A rule between fields (which a schema cannot state) names itself, as the document's descriptions do.
    const rule = i.code === 'custom' ? (i.params as { rule?: unknown } | undefined)?.rule : undefined;
    return [{ field: at.length ? rename(at.join('.')) : `(${where})`, reason: i.message, ...(typeof rule === 'string' ? { rule } : {}) }];
  });
  res.status(400).json({ error: 'invalid request', issues });
}

/** Bad input found after parsing (a policy rule, a header): 400 with the issues as given. */
export function badRequestIssues(res: Response, issues: Array<{ field: string; reason: string; rule?: string }>): void {
  res.status(400).json({ error: 'invalid request', issues });
}

export function problem(res: Response, status: number, error: string, detail?: string): void {
  res.status(status).json(detail ? { error, detail } : { error });
}

/** A quota of the org would be exceeded: 409 naming the quota, its use, the ask and the limit. Nothing was started or changed. */
export function quotaExceeded(res: Response, excess: QuotaExcess): void {
  res.status(409).json({ error: 'quota exceeded', detail: describeExcess(excess), quota: excess });
}

/** A bound was reached (rateLimits.ts): 429 with Retry-After, nothing was done. */
export function tooMany(res: Response, refusal: { retryAfterS: number; detail: string }): void {
  res.setHeader('Retry-After', String(refusal.retryAfterS));
  problem(res, 429, 'too many requests', refusal.detail);
}
