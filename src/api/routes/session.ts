import { Router } from 'express';
import { principalOf } from '../auth/authenticate';
import { orgOf } from '../auth/permissions';

/**
 * `GET /api/session`: who the presented key belongs to (id, role, org, email), so that a client such as the web
 * console can show what its holder may do. Never the key, nor its hash.
 */
export function sessionRoutes(): Router {
  const router = Router();
  router.get('/', (_req, res) => {
    const p = principalOf(res);
    const org = orgOf(p);
    res.set('Cache-Control', 'no-store');
    res.json({ id: p.id, role: p.role, ...(org !== undefined ? { org } : {}), ...(p.email !== undefined ? { email: p.email } : {}) });
  });
  return router;
}
