import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CliError } from '../cliError';
import { exitCodes } from '../exitCodes';

type OpenIdClient = typeof import('openid-client', { with: { 'resolution-mode': 'import' } });
type Configuration = InstanceType<OpenIdClient['Configuration']>;
type Tokens = Awaited<ReturnType<OpenIdClient['authorizationCodeGrant']>>;

/** How long the CLI waits for the browser to come back: a person signing in, the scale of a device code's life. */
export const LOOPBACK_WAIT_S = 300;

/** The path of the redirect URI on the loopback listener; a provider that matches exactly registers this one. */
export const loopbackCallbackPath = '/callback';

/** The redirect URI the loopback sign-in uses for a port (RFC 8252 §7.3: the IP literal, not "localhost"). */
export const loopbackRedirectUri = (port: number) => `http://127.0.0.1:${port}${loopbackCallbackPath}`;

export interface LoopbackOptions {
  scope: string;
  /** The port to listen on; 0: a free one (for providers that accept any loopback port, RFC 8252 §7.3). */
  port: number;
  /** Shows the person the URL to open. */
  show(url: string): void;
  /** Also hands the URL to the desktop's browser (only when asked: never a surprise in CI or over SSH). */
  openBrowser: boolean;
  /**
   * Whether pveflow takes these tokens (the CLI asks the API who they are): what the browser's page says after "as",
   * or a CliError the page then shows. The page waits for it, so it never says "signed in" to a person the API refuses.
   */
  confirm(tokens: Tokens): Promise<string>;
}

const escapeHtml = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** openid-client's error with the check that failed, which it keeps as the cause (e.g. the unexpected state). */
function reason(err: Error): string {
  return err.cause instanceof Error && err.cause.message !== err.message ? `${err.message}: ${err.cause.message}` : err.message;
}

function page(res: ServerResponse, status: number, title: string, text: string): void {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' });
  res.end(`<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(text)}</p></body></html>\n`);
}

/** The desktop's "open this URL" command; failures are ignored, since the URL is printed anyway. */
export function openInBrowser(url: string): void {
  const [cmd, args] = process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '""', url]] : ['xdg-open', [url]];
  try {
    const child = spawn(cmd, args, { stdio: 'ignore', detached: true });
    child.on('error', () => undefined);
    child.unref();
  } catch {
    // The printed URL is the way in; a missing opener changes nothing.
  }
}

/**
 * The authorization code grant with PKCE through a loopback redirect (RFC 8252), for providers without the device
 * grant: a listener on 127.0.0.1, the provider's URL shown to the person, and the first answer at the callback taken
 * through openid-client, which checks its state, the ID token's nonce and exchanges the code with the PKCE verifier.
 * That first answer decides: a wrong or replayed state ends the sign-in with nothing kept, rather than leaving the
 * listener to whoever calls next.
 */
export async function loopbackSignIn(oidc: OpenIdClient, config: Configuration, options: LoopbackOptions): Promise<Tokens> {
  const server = createServer();
  await new Promise<void>((ok, fail) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      fail(new CliError(err.code === 'EADDRINUSE' ? `port ${options.port} on 127.0.0.1 is in use: choose another --loopback-port` : `cannot listen on 127.0.0.1 for the sign-in: ${err.message}`, exitCodes.unavailable)),
    );
    server.listen(options.port, '127.0.0.1', () => ok());
  });
  const redirectUri = loopbackRedirectUri((server.address() as AddressInfo).port);
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: options.scope,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    const answered = new Promise<Tokens>((ok, fail) => {
      let taken = false;
      server.on('request', (req: IncomingMessage, res: ServerResponse) => {
        const current = new URL(req.url ?? '/', redirectUri);
        if (req.method !== 'GET' || current.pathname !== loopbackCallbackPath) return page(res, 404, 'Not found', 'This address only takes the sign-in answer of pveflow login.');
        if (taken) return page(res, 409, 'Already answered', 'This sign-in has already been answered; run pveflow login again.');
        taken = true;
        oidc.authorizationCodeGrant(config, current, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true }, { redirect_uri: redirectUri }).then(
          (tokens) =>
            options.confirm(tokens).then(
              (who) => {
                page(res, 200, 'Signed in to pveflow', `Signed in as ${who}. You can close this tab and return to the terminal.`);
                ok(tokens);
              },
              (err: Error) => {
                page(res, 403, 'Sign-in refused', `The provider signed you in, but pveflow refused it: ${err.message}`);
                fail(err);
              },
            ),
          (err: Error) => {
            page(res, 400, 'Sign-in failed', `pveflow login did not accept this answer (${reason(err)}). Run pveflow login again.`);
            fail(new CliError(`the sign-in was not completed: ${reason(err)}`, exitCodes.auth));
          },
        );
      });
      timer = setTimeout(() => fail(new CliError(`no answer from the browser within ${LOOPBACK_WAIT_S / 60} minutes: run \`pveflow login\` again`, exitCodes.auth)), LOOPBACK_WAIT_S * 1000);
    });
    options.show(url.href);
    if (options.openBrowser) openInBrowser(url.href);
    return await answered;
  } finally {
    clearTimeout(timer);
    // No new connections; the browser's, once its page is flushed, closes as idle; nothing here keeps the CLI alive.
    server.close();
    server.closeIdleConnections();
    server.unref();
  }
}
