import { timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { problem } from '../http/problems';
import { identityFromClaims } from './oidcIdentity';
import { ProviderUnavailable, SignInRefused } from './oidcClient';
import { CSRF_HEADER, cookieOf, SESSION_COOKIE, type SignIn } from './signIn';
import type { SessionRecord } from './sessionStore';

const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Who is calling, when sign-in through a provider is configured, in front of the API keys' `authenticate`:
 *
 * | the call carries                         | answer                                                            |
 * |------------------------------------------|-------------------------------------------------------------------|
 * | `Authorization: Bearer <JWT>`            | the provider's token, checked against its JWKS and audience      |
 * | `Authorization: Bearer <anything else>`  | an API key (keys' own authenticate)                               |
 * | no Authorization, a session cookie       | the console's session; a change also needs its CSRF header       |
 * | nothing                                  | the keys' authenticate answers 401                                |
 */
export function signInAuthentication(signIn: SignIn, keys: RequestHandler): RequestHandler {
  return (req, res, next) => {
    const header = req.get('authorization');
    const bearer = /^Bearer (\S+)$/i.exec(header?.trim() ?? '')?.[1];
    if (bearer && JWT.test(bearer)) {
      signIn.oidc.verifyBearer(bearer).then(
        (claims) => {
          const identity = identityFromClaims(claims, signIn.settings);
          if ('refusal' in identity) return problem(res, 403, 'forbidden', identity.refusal);
          res.locals.principal = identity.principal;
          next();
        },
        (err: unknown) => {
          if (err instanceof ProviderUnavailable) return problem(res, 503, 'unavailable', `the token cannot be checked now: ${err.message}`);
          res.set('WWW-Authenticate', 'Bearer realm="pveflow", error="invalid_token"');
          problem(res, 401, 'unauthenticated', `the provider's token is refused: ${err instanceof SignInRefused ? err.message : 'it could not be checked'}`);
        },
      );
      return;
    }
    const cookie = header ? undefined : cookieOf(req.get('cookie'), SESSION_COOKIE);
    if (!cookie) return keys(req, res, next);
    signIn.sessions.get(cookie).then((session) => {
      if (!session) return problem(res, 401, 'unauthenticated', 'your session has ended (signed out, or idle too long): sign in again');
      if (!SAFE.has(req.method) && !csrfMatches(req.get(CSRF_HEADER), session)) {
        return problem(res, 403, 'forbidden', `a change from a signed-in browser must carry the session's ${CSRF_HEADER} header (cross-site request refused)`);
      }
      res.locals.principal = session.principal;
      res.locals.session = session;
      next();
    }, next);
  };
}

export function csrfMatches(sent: string | undefined, session: SessionRecord): boolean {
  if (!sent) return false;
  const a = Buffer.from(sent);
  const b = Buffer.from(session.csrf);
  return a.length === b.length && timingSafeEqual(a, b);
}
