import { request } from 'undici';
import { CliError, usageError } from '../cliError';
import type { Command } from '../command';
import type { CliContext } from '../context';
import { exitCodes } from '../exitCodes';
import { loopbackSignIn, openInBrowser } from '../signIn/loopback';
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

/** --loopback-port: 0 (a free port) unless the provider matches the redirect URI exactly and a port was registered. */
function loopbackPort(value: string | undefined): number {
  if (value === undefined) return 0;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw usageError(`--loopback-port must be a port number from 1 to 65535, not "${value}"`);
  return port;
}

export const loginCommand: Command = {
  words: ['login'],
  synopsis: '[--loopback] [--loopback-port N] [--open-browser]',
  summary:
    "sign in through your organisation's identity provider: a device code, or a browser sent back to this machine (127.0.0.1) where the provider has no device grant or with --loopback; PVEFLOW_API_KEY still wins when set",
  flags: ['loopback', 'loopback-port', 'open-browser'],
  async run(ctx) {
    if (ctx.args.length) throw usageError(`unexpected argument: ${ctx.args.join(' ')}`);
    const apiUrl = ctx.apiUrl();
    const port = loopbackPort(ctx.flags['loopback-port']);
    const openBrowser = ctx.flags['open-browser'] === true;
    const offer = await offerOf(ctx);
    const timeoutS = Math.ceil(ctx.timeoutMs / 1000);
    const { oidc, config } = await discoverProvider(offer.issuer, offer.client_id, timeoutS);
    const byDevice = !ctx.flags.loopback && Boolean(config.serverMetadata().device_authorization_endpoint);
    if (byDevice && ctx.flags['loopback-port'] !== undefined) throw usageError(`--loopback-port is for the loopback sign-in, and ${offer.issuer} offers the device grant: add --loopback`);
    type Tokens = Awaited<ReturnType<typeof oidc.pollDeviceAuthorizationGrant>>;
    type Me = { id: string; role: string; org?: string; email?: string };
    /**
     * Keeps the tokens and asks the API who they are: proof the token works there, and what they may do. A refusal
     * (no role, another application's token) forgets them again: nothing is kept that the API does not take.
     */
    const confirm = async (tokens: Tokens) => {
      saveSignIn(configDir(ctx.env), apiUrl, storedFrom(offer.issuer, offer.client_id, tokens));
      try {
        return await ctx.api().get<Me>('/api/session');
      } catch (err) {
        forgetSignIn(configDir(ctx.env), apiUrl);
        throw err;
      }
    };
    const described = (me: Me) => `${me.email ?? me.id} (${me.role}${me.org ? ` in ${me.org}` : ', all organisations'})`;
    let me: Awaited<ReturnType<typeof confirm>> | undefined;
    if (byDevice) {
      const device = await oidc.initiateDeviceAuthorization(config, { scope: offer.scopes });
      const url = device.verification_uri_complete ?? device.verification_uri;
      ctx.out(`To sign in, open ${url}`);
      ctx.out(`and confirm the code ${device.user_code} (it expires in ${Math.round(device.expires_in / 60)} minutes).`);
      if (openBrowser) openInBrowser(url);
      let tokens: Tokens;
      try {
        tokens = await oidc.pollDeviceAuthorizationGrant(config, device);
      } catch (err) {
        throw new CliError(`the sign-in was not completed: ${(err as Error).message}`, exitCodes.auth);
      }
      me = await confirm(tokens);
    } else {
      await loopbackSignIn(oidc, config, {
        scope: offer.scopes,
        port,
        openBrowser,
        show: (url) => {
          ctx.out(`To sign in, open ${url}`);
          ctx.out('in a browser on this machine: the provider sends it back to this command on 127.0.0.1.');
        },
        // The browser's page says what the API said: signed in as whom, or why not.
        confirm: async (tokens) => described((me = await confirm(tokens)).body),
      });
    }
    if (!me) throw new CliError('the sign-in ended without an answer from the API', exitCodes.auth);
    if (ctx.json) return (ctx.out(me.text), exitCodes.ok);
    ctx.out(`Signed in to ${apiUrl} as ${described(me.body)}.`);
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
