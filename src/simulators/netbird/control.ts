import { timingSafeEqual } from 'node:crypto';
import express, { type Request, type Response } from 'express';
import { z } from 'zod';
import { NetbirdEnrollmentError, NetbirdStatusError } from './errors';

/**
 * The simulator's control endpoint, outside `/api` so that no NetBird client reaches it by accident: what the
 * world outside the management API does. A machine joins (`netbird up --setup-key`, or a user's SSO login) and the
 * state can be read. It exists only when a control token was configured; every call carries `Authorization:
 * Bearer <token>`.
 *
 *   POST /_sim/peers   {"setup_key": "...", "hostname": "..."}  or  {"email": "...", "hostname": "..."}
 *   GET  /_sim/state   the state dump
 */
export const NETBIRD_CONTROL_PREFIX = '/_sim';

export interface NetbirdControlOptions {
  token: string;
}

export interface NetbirdControlDeps {
  enrollPeer(input: { setupKey: string; hostname: string }): unknown;
  enrollUserPeer(input: { email: string; hostname: string }): unknown;
  dump(): unknown;
}

const joinSchema = z.union([z.object({ setup_key: z.string().min(1), hostname: z.string().min(1).max(253) }).strict(), z.object({ email: z.string().min(3), hostname: z.string().min(1).max(253) }).strict()]);

export function netbirdControlRouter(opts: NetbirdControlOptions, deps: NetbirdControlDeps): express.Router {
  const router = express.Router();
  router.use((req, res, next) => (authorized(opts.token, req.get('authorization')) ? next() : res.status(401).json({ error: 'control token missing or wrong' })));
  router.post('/peers', express.json({ limit: '16kb' }), (req: Request, res: Response) => {
    const parsed = joinSchema.safeParse(req.body);
    if (!parsed.success) {
      res.status(400).json({ error: 'give {setup_key, hostname} or {email, hostname}', issues: parsed.error.issues });
      return;
    }
    try {
      const body = parsed.data;
      const peer = 'setup_key' in body ? deps.enrollPeer({ setupKey: body.setup_key, hostname: body.hostname }) : deps.enrollUserPeer({ email: body.email, hostname: body.hostname });
      // The `peersNeverRegister` fault: the machine never reaches management.
      if (peer === undefined) res.status(202).json({ data: null });
      else res.status(200).json({ data: peer });
    } catch (err) {
      if (err instanceof NetbirdEnrollmentError) res.status(409).json({ error: err.message, reason: err.reason });
      else if (err instanceof NetbirdStatusError) res.status(err.status).json({ error: err.message });
      else throw err;
    }
  });
  router.get('/state', (_req, res) => {
    res.status(200).json({ data: deps.dump() });
  });
  router.use((req, res) => {
    res.status(404).json({ error: `no control route '${req.method} ${NETBIRD_CONTROL_PREFIX}${req.path}'` });
  });
  return router;
}

function authorized(token: string, header: string | undefined): boolean {
  const m = /^Bearer (.+)$/.exec(header ?? '');
  if (!m) return false;
  const a = Buffer.from(m[1]!);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}
