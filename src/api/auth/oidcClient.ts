import type { OidcSettings } from './oidcSettings';

// openid-client and jose are ES modules; the API is CommonJS, so they are loaded with import() (kept as such by tsc).
type OpenIdClient = typeof import('openid-client', { with: { 'resolution-mode': 'import' } });
type Jose = typeof import('jose', { with: { 'resolution-mode': 'import' } });
type Configuration = InstanceType<OpenIdClient['Configuration']>;

/** The provider could not be asked (down, unreachable, or answering nonsense): sign-in cannot start or finish. */
export class ProviderUnavailable extends Error {
  override readonly name = 'ProviderUnavailable';
}

/** The provider's answer was refused: a bad code, state or nonce, a token not signed by it, for another audience, expired. */
export class SignInRefused extends Error {
  override readonly name = 'SignInRefused';
}

/** How long the API waits for the provider before telling the person it cannot be reached. */
const PROVIDER_TIMEOUT_S = 5;

/**
 * pveflow's side of the OpenID provider, through openid-client (discovery, PKCE, state, nonce, the code exchange and
 * the ID token's checks) and jose (bearer tokens against the issuer's JWKS). No token is checked by hand here.
 *
 * Discovery is repeated at every sign-in, so that a provider that went down says so at once rather than after the
 * person has been sent to a page that does not load; the last good answer serves callbacks, sign-outs and bearers.
 */
export class OidcClient {
  private last?: Configuration;
  private jwks?: { uri: string; set: ReturnType<Jose['createRemoteJWKSet']> };

  constructor(readonly settings: OidcSettings) {}

  private lib(): Promise<OpenIdClient> {
    return import('openid-client');
  }

  async discover(): Promise<Configuration> {
    const oidc = await this.lib();
    try {
      const config = await oidc.discovery(this.settings.issuer, this.settings.clientId, this.settings.clientSecret, this.settings.clientSecret ? undefined : oidc.None(), {
        timeout: PROVIDER_TIMEOUT_S,
        ...(this.settings.allowHttp ? { execute: [oidc.allowInsecureRequests] } : {}),
      });
      this.last = config;
      return config;
    } catch (err) {
      throw new ProviderUnavailable(`the identity provider at ${this.settings.issuer.href} cannot be reached or did not answer as an OpenID provider (${describe(err)})`);
    }
  }

  private async configuration(): Promise<Configuration> {
    return this.last ?? this.discover();
  }

  /** Where to send the browser: the provider's authorization endpoint with PKCE (S256), state and nonce. */
  async authorizationUrl(state: string, nonce: string, verifier: string): Promise<URL> {
    const oidc = await this.lib();
    const config = await this.discover();
    return oidc.buildAuthorizationUrl(config, {
      redirect_uri: this.settings.redirectUrl.href,
      scope: this.settings.scopes,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });
  }

  newSecrets(): Promise<{ verifier: string; nonce: string }> {
    return this.lib().then((oidc) => ({ verifier: oidc.randomPKCECodeVerifier(), nonce: oidc.randomNonce() }));
  }

  /** The code exchange at the callback: the ID token's signature, issuer, audience, expiry and nonce all checked. */
  async finish(callbackUrl: URL, expected: { state: string; nonce: string; verifier: string }): Promise<{ claims: Record<string, unknown>; idToken?: string }> {
    const oidc = await this.lib();
    const config = await this.configuration();
    let tokens: Awaited<ReturnType<OpenIdClient['authorizationCodeGrant']>>;
    try {
      tokens = await oidc.authorizationCodeGrant(config, callbackUrl, { pkceCodeVerifier: expected.verifier, expectedState: expected.state, expectedNonce: expected.nonce, idTokenExpected: true });
    } catch (err) {
      if (isUnreachable(err)) throw new ProviderUnavailable(`the identity provider at ${this.settings.issuer.href} cannot be reached to finish the sign-in (${describe(err)})`);
      throw new SignInRefused(`the provider's answer was refused: ${describe(err)}`);
    }
    const claims = tokens.claims();
    if (!claims) throw new SignInRefused('the provider sent no ID token');
    return { claims: { ...claims }, ...(tokens.id_token ? { idToken: tokens.id_token } : {}) };
  }

  /** The provider's sign-out page (RP-initiated logout), when it offers one. */
  async endSessionUrl(idToken: string | undefined, after: URL): Promise<URL | undefined> {
    const oidc = await this.lib();
    const config = this.last ?? (await this.discover().catch(() => undefined));
    if (!config?.serverMetadata().end_session_endpoint) return undefined;
    return oidc.buildEndSessionUrl(config, { post_logout_redirect_uri: after.href, ...(idToken ? { id_token_hint: idToken } : {}), client_id: this.settings.clientId });
  }

  /**
   * The claims of a bearer token the provider signed (an ID token, or an access token the provider issues as a JWT):
   * signature against the issuer's JWKS, issuer, one of the configured audiences, expiry. Throws SignInRefused.
   */
  async verifyBearer(token: string): Promise<Record<string, unknown>> {
    const jose: Jose = await import('jose');
    const config = await this.configuration();
    const uri = config.serverMetadata().jwks_uri;
    if (!uri) throw new ProviderUnavailable('the provider publishes no JWKS (jwks_uri)');
    if (this.jwks?.uri !== uri) this.jwks = { uri, set: jose.createRemoteJWKSet(new URL(uri), { timeoutDuration: PROVIDER_TIMEOUT_S * 1000 }) };
    try {
      const { payload } = await jose.jwtVerify(token, this.jwks.set, { issuer: config.serverMetadata().issuer, audience: this.settings.audiences });
      return { ...payload };
    } catch (err) {
      if (err instanceof jose.errors.JWKSTimeout || (err instanceof TypeError && isUnreachable(err))) throw new ProviderUnavailable(`the provider's keys cannot be fetched (${describe(err)})`);
      const code = (err as { code?: string }).code;
      const why =
        code === 'ERR_JWT_EXPIRED'
          ? 'the token has expired'
          : code === 'ERR_JWT_CLAIM_VALIDATION_FAILED'
            ? `the token's ${(err as { claim?: string }).claim ?? 'claims'} is not for pveflow (${describe(err)})`
            : code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED'
              ? 'the token is not signed by the provider'
              : describe(err);
      throw new SignInRefused(why);
    }
  }
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as { cause?: unknown }).cause;
  return cause instanceof Error && cause.message !== err.message ? `${err.message}: ${cause.message}` : err.message;
}

function isUnreachable(err: unknown): boolean {
  const text = describe(err);
  return /fetch failed|ECONNREFUSED|ECONNRESET|ETIMEDOUT|timed? ?out|aborted|ENOTFOUND|EHOSTUNREACH/i.test(text);
}
