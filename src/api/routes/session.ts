import { Router } from 'express';
import { quotaFor, type Usage } from '../../domain/quotas';
import { principalOf } from '../auth/authenticate';
import { orgOf } from '../auth/permissions';
import type { ApiContext } from '../http/context';
import { usageOf } from '../reads/quotaUse';
import type { SessionAnswer } from '../../contracts/apiSchemas';
import type { SessionRecord } from '../auth/sessionStore';

/**
 * `GET /api/session`: who the presented key belongs to (id, role, org, email), so that a client such as the web
 * console can show what its holder may do, and what the orgs it sees hold of their quotas. Never the key, nor its hash.
 */
export function sessionRoutes(ctx: ApiContext): Router {
  const router = Router();
  router.get('/', async (_req, res) => {
    const p = principalOf(res);
    const org = orgOf(p);
    // An org key sees its own org; an operator every org the configuration names. An org without quota shows none.
    const orgs = (org !== undefined ? [org] : Object.keys(ctx.quotas).filter((o) => o !== '*')).filter((o) => quotaFor(ctx.quotas, o));
    let quotas: SessionAnswer['quotas'];
    try {
      quotas = orgs.length ? await Promise.all(orgs.map(async (o) => ({ org: o, limits: quotaFor(ctx.quotas, o) ?? {}, use: wire(await usageOf(ctx, o)) }))) : undefined;
    } catch {
      // Who the key is does not depend on Temporal: the session answers without the use when it cannot be counted.
      quotas = undefined;
    }
    res.set('Cache-Control', 'no-store');
    // A browser's session (sign-in through the provider) learns the token its changes must carry (sessionAuth.ts).
    const session = res.locals.session as SessionRecord | undefined;
    res.json({ id: p.id, role: p.role, ...(org !== undefined ? { org } : {}), ...(p.email !== undefined ? { email: p.email } : {}), ...(quotas ? { quotas } : {}), ...(session ? { csrf_token: session.csrf } : {}) });
  });
  return router;
}

const wire = (u: Usage) => ({ vms: u.vms, cores: u.cores, memory_mib: u.memory_mib, disk_gib: u.disk_gib });
