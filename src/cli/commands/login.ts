import { request } from 'undici';
import { CliError, usageError } from '../cliError';
import type { Command } from '../command';
import type { CliContext } from '../context';
import { exitCodes } from '../exitCodes';
import { configDir, discoverProvider, forgetSignIn, saveSignIn, storedFrom } from '../signIn/tokens';

interface SignInOffer {
  cli?: { issuer: string; client_id: string; scopes: string };
}

/** What the API offers the CLI for sign-in (GET /auth/providers, no credential needed). */
async function offerOf(ctx: CliContext): Promise<NonNullable<SignInOffer['cli']>> {
  const url = ctx.apiUrl();
  let offer: SignInOffer;
  try {
    const res = await request(`${url}/auth/providers`, { headersTimeout: ctx.timeoutMs, bodyTimeout: ctx.timeoutMs });
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new CliError(`the API at ${url} answered ${res.statusCode} to /auth/providers: is it a pveflow that signs people in?`, exitCodes.unavailable);
    }
    offer = (await res.body.json()) as SignInOffer;
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`the API at ${url} cannot be reached: ${(err as Error).message}`, exitCodes.unavailable);
  }
  if (!offer.cli) throw new CliError(`the pveflow at ${url} offers no sign-in for the CLI (its OIDC_CLI_CLIENT_ID is unset): use an API key (PVEFLOW_API_KEY)`, exitCodes.auth);
  return offer.cli;
}

export const loginCommand: Command = {
  words: ['login'],
  synopsis: '',
  summary: "sign in through your organisation's identity provider (device code); PVEFLOW_API_KEY still wins when set",
  flags: [],
  async run(ctx) {
    if (ctx.args.length) throw usageError(`unexpected argument: ${ctx.args.join(' ')}`);
    const apiUrl = ctx.apiUrl();
    const offer = await offerOf(ctx);
    const timeoutS = Math.ceil(ctx.timeoutMs / 1000);
    const { oidc, config } = await discoverProvider(offer.issuer, offer.client_id, timeoutS);
    if (!config.serverMetadata().device_authorization_endpoint) {
      throw new CliError(`the identity provider at ${offer.issuer} offers no device authorization grant: sign in with an API key (PVEFLOW_API_KEY) instead`, exitCodes.auth);
    }
    const device = await oidc.initiateDeviceAuthorization(config, { scope: offer.scopes });
    ctx.out(`To sign in, open ${device.verification_uri_complete ?? device.verification_uri}`);
    ctx.out(`and confirm the code ${device.user_code} (it expires in ${Math.round(device.expires_in / 60)} minutes).`);
    let tokens: Awaited<ReturnType<typeof oidc.pollDeviceAuthorizationGrant>>;
    try {
      tokens = await oidc.pollDeviceAuthorizationGrant(config, device);
    } catch (err) {
      throw new CliError(`the sign-in was not completed: ${(err as Error).message}`, exitCodes.auth);
    }
    const stored = storedFrom(offer.issuer, offer.client_id, tokens);
    saveSignIn(configDir(ctx.env), apiUrl, stored);
    // Who the API now takes this person for: proof the token works there, and what they may do.
    const me = await ctx.api().get<{ id: string; role: string; org?: string; email?: string }>('/api/session');
    if (ctx.json) return (ctx.out(me.text), exitCodes.ok);
    ctx.out(`Signed in to ${apiUrl} as ${me.body.email ?? me.body.id} (${me.body.role}${me.body.org ? ` in ${me.body.org}` : ', all organisations'}).`);
    if (ctx.env.PVEFLOW_API_KEY) ctx.err('note: PVEFLOW_API_KEY is set and wins over this sign-in until you unset it');
    return exitCodes.ok;
  },
};

export const logoutCommand: Command = {
  words: ['logout'],
  synopsis: '',
  summary: 'forget the tokens `pveflow login` kept for this API',
  flags: [],
  async run(ctx) {
    if (ctx.args.length) throw usageError(`unexpected argument: ${ctx.args.join(' ')}`);
    const apiUrl = ctx.apiUrl();
    const gone = forgetSignIn(configDir(ctx.env), apiUrl);
    ctx.out(gone ? `Signed out of ${apiUrl}${gone.email ? ` (${gone.email})` : ''}: its tokens are deleted from this machine.` : `You were not signed in to ${apiUrl}.`);
    return exitCodes.ok;
  },
};
