import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Request, Response } from 'express';
import type { Principal } from '../auth/apiKeys';
import type { KeyLookup } from '../auth/apiKeysIssued';

/**
 * An operator's signed-in browser session for Temporal UI: the operator gives their API key once, the browser keeps
 * an HttpOnly, SameSite=Strict cookie that names the key (by id), when it expires, and a MAC over both. The key itself
 * never leaves the sign-in request, script on the page cannot read the cookie, and no other site can make the browser
 * send it. A session holds only while its key is still configured as an operator's.
 */
export const SESSION_COOKIE = 'pveflow_ui_session';
/** What the session MAC key is derived for (CodecSetup.deriveKey): one purpose, one key. */
export const OPERATOR_SESSION_KEY_PURPOSE = 'temporal-ui operator sessions';
const DEFAULT_TTL_MS = 8 * 3600_000;

export class OperatorSessions {
  constructor(
    private readonly keys: KeyLookup,
    /** Derived from the payload key ring, so every API process accepts the sessions of the others. */
    private readonly secret: Buffer,
    private readonly ttlMs = DEFAULT_TTL_MS,
  ) {}

  /** The operator holding `apiKey`, or undefined (unknown key, or not an operator's). */
  operatorFor(apiKey: string): Principal | undefined {
    const principal = this.keys.authenticate(apiKey);
    return principal?.role === 'operator' ? principal : undefined;
  }

  start(res: Response, principal: Principal, secure: boolean): void {
    const expires = Date.now() + this.ttlMs;
    const body = `${Buffer.from(principal.id).toString('base64url')}.${expires}`;
    res.cookie(SESSION_COOKIE, `${body}.${this.mac(body)}`, {
      httpOnly: true,
      sameSite: 'strict',
      secure,
      path: '/',
      expires: new Date(expires),
    });
  }

  end(res: Response): void {
    res.clearCookie(SESSION_COOKIE, { path: '/' });
  }

  /** The operator whose valid session the request carries, or undefined. */
  operatorOf(req: Request): Principal | undefined {
    const token = cookieValue(req.headers.cookie, SESSION_COOKIE);
    const m = token ? /^([A-Za-z0-9_-]+)\.(\d+)\.([A-Za-z0-9_-]+)$/.exec(token) : null;
    if (!m) return undefined;
    const [, id, expires, mac] = m as unknown as [string, string, string, string];
    const expected = Buffer.from(this.mac(`${id}.${expires}`));
    const presented = Buffer.from(mac);
    if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) return undefined;
    if (Number(expires) < Date.now()) return undefined;
    const principal = this.keys.principalById(Buffer.from(id, 'base64url').toString());
    return principal?.role === 'operator' ? principal : undefined;
  }

  private mac(body: string): string {
    return createHmac('sha256', this.secret).update(body).digest('base64url');
  }
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      // Anyone can send any bytes: a broken %-escape is no session (401), not an error.
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}
