import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { createApp } from '../src/api/app';
import { ApiKeyStore } from '../src/api/auth/apiKeys';
import { signInFrom } from '../src/api/auth/signIn';
import { loadConfig } from '../src/config';
import { searchAttributeDefinitions } from '../src/contracts/searchAttributes';
import { defaultRequestPolicy } from '../src/domain/requestPolicyRules';
import { requireTemporalBinary } from '../src/temporal/binaries';
import { pveflow } from './support/cliRunner';
import { confirmDeviceCode, dexMissing, startOidcProvider, testUsers, walkToLoopback, type OidcProvider } from './support/oidcProvider';
import { freePort } from './support/ports';

/**
 * `pveflow login` by the device authorization grant against a real provider (Dex): the person confirms the code at
 * the provider's own pages, the CLI keeps the tokens 0600 in the user's config directory, renews them when they
 * expire, and `pveflow logout` forgets them. PVEFLOW_API_KEY still wins. Then the loopback redirect (authorization
 * code + PKCE, RFC 8252) that providers without the device grant need, forced with --loopback since Dex has both.
 */
describe('pveflow login through the provider', { skip: dexMissing() }, () => {
  let env: TestWorkflowEnvironment;
  let provider: OidcProvider;
  let server: Server;
  let apiUrl: string;
  let home: string;
  let cli: Record<string, string>;
  /** The CLI's loopback port: registered exactly with Dex (see cliLoopbackRedirects). */
  let loopbackPort: number;

  before(async () => {
    home = mkdtempSync(join(tmpdir(), 'pveflow-cli-home-'));
    env = await TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path: requireTemporalBinary('temporal') }, searchAttributes: searchAttributeDefinitions },
    });
    const port = await freePort();
    apiUrl = `http://127.0.0.1:${port}`;
    loopbackPort = await freePort();
    provider = await startOidcProvider({ apiUrl, cliLoopbackRedirects: [`http://127.0.0.1:${loopbackPort}/callback`] });
    const app = createApp({
      client: env.client,
      taskQueue: `cli-login-${process.pid}`,
      policy: defaultRequestPolicy,
      apiKeys: new ApiKeyStore([]),
      ...signInFrom(loadConfig({ ...provider.env, SESSION_DIR: join(home, 'sessions') })),
    });
    server = await new Promise<Server>((ok) => {
      const s = app.listen(port, '127.0.0.1', () => ok(s));
    });
    cli = { PVEFLOW_API_URL: apiUrl, HOME: home, XDG_CONFIG_HOME: join(home, '.config') };
  });

  after(async () => {
    await new Promise<void>((ok) => (server ? server.close(() => ok()) : ok()));
    await provider?.stop();
    await env?.teardown();
    rmSync(home, { recursive: true, force: true });
  });

  const tokensFile = () => join(home, '.config', 'pveflow', 'tokens.json');

  test('a device login: the code confirmed at the provider, the tokens kept 0600, the API takes them', async () => {
    let confirming: Promise<string> | undefined;
    const run = await pveflow(['login'], cli, {
      onStdout: (soFar) => {
        const url = /open (\S+)/.exec(soFar)?.[1];
        if (url && !confirming) confirming = confirmDeviceCode(url, testUsers.consultant);
      },
    });
    assert.equal(run.code, 0, run.stderr);
    assert.ok(confirming, 'the CLI showed where to confirm');
    assert.match(await confirming, /Login Successful|return to your device|successful/i);
    assert.match(run.stdout, /and confirm the code [A-Z]{4}-[A-Z]{4}/);
    assert.match(run.stdout, new RegExp(`Signed in to ${apiUrl} as carla@consultancy\\.example \\(requester in Acme Corp\\)`));
    assert.equal(statSync(tokensFile()).mode & 0o777, 0o600);
    assert.equal(statSync(join(home, '.config', 'pveflow')).mode & 0o777, 0o700);

    const list = await pveflow(['requests', 'list', '--json'], cli);
    assert.equal(list.code, 0, list.stderr);

    // A key given wins over the sign-in (here a wrong one: refused, not quietly replaced by the tokens).
    const keyed = await pveflow(['requests', 'list'], { ...cli, PVEFLOW_API_KEY: 'pvf_not-a-key-of-this-api-at-all' });
    assert.equal(keyed.code, 3);
  });

  test('an expired ID token is renewed with the refresh token, and the renewal saved', async () => {
    const kept = JSON.parse(readFileSync(tokensFile(), 'utf8'));
    const before = kept[apiUrl].id_token as string;
    kept[apiUrl].expires_at = Math.floor(Date.now() / 1000) - 10;
    writeFileSync(tokensFile(), JSON.stringify(kept), { mode: 0o600 });
    const list = await pveflow(['requests', 'list', '--json'], cli);
    assert.equal(list.code, 0, list.stderr);
    const renewed = JSON.parse(readFileSync(tokensFile(), 'utf8'))[apiUrl];
    assert.notEqual(renewed.id_token, before);
    assert.ok(renewed.expires_at > Date.now() / 1000);
    assert.equal(statSync(tokensFile()).mode & 0o777, 0o600);
  });

  test('logout forgets the tokens; the CLI then asks for a key or a login', async () => {
    const out = await pveflow(['logout'], cli);
    assert.equal(out.code, 0);
    assert.match(out.stdout, /Signed out of .* \(carla@consultancy\.example\): its tokens are deleted/);
    assert.deepEqual(JSON.parse(readFileSync(tokensFile(), 'utf8')), {});
    const list = await pveflow(['requests', 'list'], cli);
    assert.equal(list.code, 3);
    assert.match(list.stderr, /run `pveflow login`/);
  });

  /** The provider's answer to the first loopback login, delivered again to a later one. */
  let firstAnswer: string | undefined;

  /** Runs `pveflow login --loopback`, handing the URL it prints to `follow` (the person at the browser). */
  async function loopbackLogin(env: Record<string, string>, follow: (authorizationUrl: string, redirectUri: string) => Promise<Response>) {
    let following: Promise<Response> | undefined;
    const run = await pveflow(['login', '--loopback', '--loopback-port', String(loopbackPort)], env, {
      onStdout: (soFar) => {
        const url = /open (\S+)/.exec(soFar)?.[1];
        if (url && !following) following = follow(url, new URL(url).searchParams.get('redirect_uri')!);
      },
    });
    assert.ok(following, `the CLI showed where to sign in: ${run.stdout} ${run.stderr}`);
    return { run, browser: await following };
  }

  test('a loopback login: the provider sends the browser back to the CLI on 127.0.0.1, the tokens kept 0600', async () => {
    const { run, browser } = await loopbackLogin(cli, async (authorizationUrl, redirectUri) => {
      const authorization = new URL(authorizationUrl);
      assert.equal(redirectUri, `http://127.0.0.1:${loopbackPort}/callback`);
      assert.equal(authorization.searchParams.get('code_challenge_method'), 'S256');
      assert.ok(authorization.searchParams.get('state') && authorization.searchParams.get('nonce'));
      firstAnswer = await walkToLoopback(authorizationUrl, testUsers.consultant, redirectUri);
      return fetch(firstAnswer);
    });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(browser.status, 200);
    assert.match(await browser.text(), /Signed in as carla@consultancy\.example \(requester in Acme Corp\)/, 'the page says whom the API took');
    assert.match(run.stdout, new RegExp(`Signed in to ${apiUrl} as carla@consultancy\\.example \\(requester in Acme Corp\\)`));
    assert.equal(statSync(tokensFile()).mode & 0o777, 0o600);
    assert.ok(JSON.parse(readFileSync(tokensFile(), 'utf8'))[apiUrl].refresh_token, 'offline access kept, as by the device grant');

    const list = await pveflow(['requests', 'list', '--json'], cli);
    assert.equal(list.code, 0, list.stderr);
  });

  test("a replayed answer (another sign-in's state and used code) is refused: the browser told, nothing kept", async () => {
    assert.ok(firstAnswer, 'the first loopback login ran');
    const elsewhere = mkdtempSync(join(tmpdir(), 'pveflow-cli-home-'));
    try {
      const fresh = { ...cli, HOME: elsewhere, XDG_CONFIG_HOME: join(elsewhere, '.config') };
      const { run, browser } = await loopbackLogin(fresh, () => fetch(firstAnswer!));
      assert.equal(browser.status, 400);
      assert.match(await browser.text(), /Sign-in failed/);
      assert.equal(run.code, 3, run.stdout);
      assert.match(run.stderr, /the sign-in was not completed: .*"state"/);
      assert.equal(existsSync(join(elsewhere, '.config', 'pveflow', 'tokens.json')), false);

      // A stranger's call to the listener with a made-up state: the same refusal.
      const forged = await loopbackLogin(fresh, (_url, redirectUri) => fetch(`${redirectUri}?code=made-up&state=not-this-sign-in`));
      assert.equal(forged.browser.status, 400);
      assert.equal(forged.run.code, 3);
      assert.match(forged.run.stderr, /"state"/);
      assert.equal(existsSync(join(elsewhere, '.config', 'pveflow', 'tokens.json')), false);
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });

  test('someone the provider signs in but pveflow gives no role: the browser is told so, not "signed in", and nothing is kept', async () => {
    const elsewhere = mkdtempSync(join(tmpdir(), 'pveflow-cli-home-'));
    try {
      const fresh = { ...cli, HOME: elsewhere, XDG_CONFIG_HOME: join(elsewhere, '.config') };
      const { run, browser } = await loopbackLogin(fresh, async (authorizationUrl, redirectUri) => fetch(await walkToLoopback(authorizationUrl, testUsers.outsider, redirectUri)));
      assert.equal(browser.status, 403);
      const text = await browser.text();
      assert.match(text, /Sign-in refused/);
      assert.doesNotMatch(text, /Signed in/);
      assert.notEqual(run.code, 0, run.stdout);
      assert.doesNotMatch(run.stdout, /Signed in/);
      const kept = join(elsewhere, '.config', 'pveflow', 'tokens.json');
      assert.ok(!existsSync(kept) || !JSON.parse(readFileSync(kept, 'utf8'))[apiUrl], 'no tokens kept for this API');
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });

  test('--loopback-port without --loopback where the device grant exists is a usage error', async () => {
    const run = await pveflow(['login', '--loopback-port', '8400'], cli);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /add --loopback/);
  });
});
