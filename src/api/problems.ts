import type { Response } from 'express';
import type { z } from 'zod';

/** Bad input: 400 with each field and the reason. Nothing was started or changed. */
export function badRequest(res: Response, error: z.ZodError, where: 'body' | 'path' | 'query' | 'headers' = 'body', rename: (field: string) => string = (f) => f): void {
  const issues = error.issues.flatMap((i) => {
    const at = i.path.map(String);
    // An unknown field is named itself, so the caller sees which one to drop (a typo, or a setting we don't take).
    if (i.code === 'unrecognized_keys') return i.keys.map((k) => ({ field: rename([...at, k].join('.')), reason: 'unknown field' }));
    return [{ field: at.length ? rename(at.join('.')) : `(${where})`, reason: i.message }];
  });
  res.status(400).json({ error: 'invalid request', issues });
}

export function problem(res: Response, status: number, error: string, detail?: string): void {
  res.status(status).json(detail ? { error, detail } : { error });
}
