import type { RequestHandler, Response } from 'express';
import { problem } from '../http/problems';
import type { ApiKeyStore, Principal } from './apiKeys';
import { roleRefusal, type Action } from './permissions';

/**
 * `Authorization: Bearer <key>` → the key's principal in `res.locals.principal`. A missing or unknown key is 401 and
 * says how to authenticate; the key itself is never echoed.
 */
export function authenticate(keys: ApiKeyStore): RequestHandler {
  return (req, res, next) => {
    const header = req.get('authorization');
    if (!header) {
      res.set('WWW-Authenticate', 'Bearer realm="pveflow"');
      return problem(res, 401, 'unauthenticated', 'send an API key as "Authorization: Bearer <key>"');
    }
    const m = /^Bearer ([\x21-\x7e]{1,512})$/i.exec(header.trim());
    const principal = m ? keys.authenticate(m[1]!) : undefined;
    if (!principal) {
      res.set('WWW-Authenticate', 'Bearer realm="pveflow", error="invalid_token"');
      return problem(res, 401, 'unauthenticated', 'the API key is not known (expected "Authorization: Bearer <key>")');
    }
    res.locals.principal = principal;
    next();
  };
}

export function principalOf(res: Response): Principal {
  const p = res.locals.principal as Principal | undefined;
  if (!p) throw new Error('route mounted without authenticate()');
  return p;
}

/** Refuses with 403 when the role may not do `action`. Returns the principal when it may. */
export function permit(res: Response, action: Action): Principal | undefined {
  const p = principalOf(res);
  const refusal = roleRefusal(p, action);
  if (refusal) {
    problem(res, 403, 'forbidden', refusal);
    return undefined;
  }
  return p;
}
