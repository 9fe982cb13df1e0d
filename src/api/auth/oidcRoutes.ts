import { Router, type Response } from 'express';
import { consoleCsp } from '../http/console';
import { identityFromClaims } from './oidcIdentity';
import { csrfMatches } from './sessionAuth';
import { ProviderUnavailable, SignInRefused } from './oidcClient';
import { CSRF_HEADER, cookieOf, LOGIN_COOKIE, SESSION_COOKIE, type SignIn } from './signIn';

/** What the console and the CLI learn of sign-in here: whether a provider is configured, and the CLI's client. */
export interface SignInOffer {
  /** Where the console sends a browser to sign in through the provider; absent: API keys only. */
  login?: string;
  cli?: { issuer: string; client_id: string; scopes: string };
}

/**
 * `/auth`: sign-in through the provider (authorization code + PKCE), its callback, sign-out. The pages a person may
 * land on here (refused, provider down, link used twice) are plain HTML that say what happened and what to do.
 */
export function signInRoutes(signIn: SignIn | undefined): Router {
  const router = Router();
  router.get('/providers', (_req, res) => {
    const offer: SignInOffer = signIn
      ? {
          login: '/auth/login',
          ...(signIn.settings.cliClientId ? { cli: { issuer: signIn.settings.issuer.href, client_id: signIn.settings.cliClientId, scopes: signIn.settings.scopes } } : {}),
        }
      : {};
    res.set('Cache-Control', 'no-store').json(offer);
  });
  if (!signIn) {
    router.use((_req, res) => page(res, 404, 'Sign-in is not configured', 'This pveflow has no identity provider configured: sign in with an API key.'));
    return router;
  }
  const secure = signIn.settings.secureCookies;
  const cookie = (name: string, value: string, maxAgeS: number, path: string) => `${name}=${value}; Path=${path}; HttpOnly; SameSite=Lax; Max-Age=${maxAgeS}${secure ? '; Secure' : ''}`;
  const home = new URL('/', signIn.settings.redirectUrl);

  router.get('/login', async (_req, res) => {
    try {
      const { verifier, nonce } = await signIn.oidc.newSecrets();
      const state = await signIn.sessions.startLogin({ verifier, nonce });
      const url = await signIn.oidc.authorizationUrl(state, nonce, verifier);
      // Lax: the provider's redirect back is a top-level navigation from another site.
      res.set('Set-Cookie', cookie(LOGIN_COOKIE, state, 600, '/auth'));
      res.set('Cache-Control', 'no-store').redirect(302, url.href);
    } catch (err) {
      if (err instanceof ProviderUnavailable)
        return page(res, 503, 'Sign-in is unavailable', `${err.message}. Try again in a few minutes; if it persists, tell your pveflow operator. Sessions already open keep working.`);
      throw err;
    }
  });

  router.get('/callback', async (req, res) => {
    const query = new URL(req.originalUrl, 'http://x').searchParams;
    const state = query.get('state') ?? '';
    res.append('Set-Cookie', cookie(LOGIN_COOKIE, '', 0, '/auth'));
    const providerError = query.get('error');
    if (providerError) return page(res, 400, 'Sign-in was not completed', `The identity provider answered: ${providerError}${query.get('error_description') ? ` (${query.get('error_description')})` : ''}.`);
    if (!state || cookieOf(req.get('cookie'), LOGIN_COOKIE) !== state) {
      return page(res, 400, 'Sign-in link not valid here', 'This sign-in was not started in this browser, or its link has already been used. Start again from the console.');
    }
    const pending = await signIn.sessions.takeLogin(state);
    if (!pending) return page(res, 400, 'Sign-in link not valid here', 'This sign-in link has already been used or has expired. Start again from the console.');
    const callbackUrl = new URL(signIn.settings.redirectUrl);
    callbackUrl.search = query.toString();
    let finished: Awaited<ReturnType<typeof signIn.oidc.finish>>;
    try {
      finished = await signIn.oidc.finish(callbackUrl, { state, nonce: pending.nonce, verifier: pending.verifier });
    } catch (err) {
      if (err instanceof ProviderUnavailable) return page(res, 503, 'Sign-in is unavailable', `${err.message}. Try again in a few minutes.`);
      if (err instanceof SignInRefused) return page(res, 400, 'Sign-in was refused', `${err.message}. Start again from the console.`);
      throw err;
    }
    const identity = identityFromClaims(finished.claims, signIn.settings);
    if ('refusal' in identity) return page(res, 403, 'No access to pveflow', identity.refusal.replace(/\.?$/, '.'), true);
    const { cookie: value } = await signIn.sessions.create(identity.principal, finished.idToken);
    res.append('Set-Cookie', cookie(SESSION_COOKIE, value, maxAgeS(signIn), '/'));
    res.set('Cache-Control', 'no-store').redirect(303, '/');
  });

  // JSON for the console: it sends its CSRF header, then follows `redirect` (the provider's sign-out, where offered).
  router.post('/logout', async (req, res) => {
    const value = cookieOf(req.get('cookie'), SESSION_COOKIE);
    const record = value ? await signIn.sessions.get(value) : undefined;
    if (record && !csrfMatches(req.get(CSRF_HEADER), record)) {
      return res.status(403).json({ error: 'forbidden', detail: `sign-out must carry the session's ${CSRF_HEADER} header` });
    }
    if (value) await signIn.sessions.remove(value);
    res.set('Set-Cookie', cookie(SESSION_COOKIE, '', 0, '/'));
    const providerLogout = record ? await signIn.oidc.endSessionUrl(record.idToken, home).catch(() => undefined) : undefined;
    res.set('Cache-Control', 'no-store').json({ redirect: providerLogout?.href ?? '/' });
  });
  return router;
}

/** The cookie lives as long as the session may (its absolute end); the store decides earlier ends. */
const maxAgeS = (signIn: SignIn) => Math.floor(signIn.sessions.maxMs / 1000);

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(res: Response, status: number, title: string, message: string, signOutHint = false): void {
  res
    .status(status)
    .set({ 'Content-Security-Policy': consoleCsp, 'X-Frame-Options': 'DENY', 'Cache-Control': 'no-store', 'Referrer-Policy': 'no-referrer' })
    .type('html')
    .send(
      `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escape(title)} · pveflow</title><link rel="stylesheet" href="/app.css"></head>` +
        `<body><main class="page"><h1>${escape(title)}</h1><p role="alert">${escape(message)}</p>` +
        `<p><a href="/">Back to the pveflow console</a>${signOutHint ? ' (you may need to sign out at your identity provider to sign in as someone else)' : ''}</p></main></body></html>`,
    );
}
