import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
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
import { dexMissing, otherClient, setCookie, startOidcProvider, testUsers, walkToCallback, type OidcProvider } from './support/oidcProvider';
import { freePort } from './support/ports';
import { waitFor } from './support/waitFor';

/**
 * Sign-in through a real OpenID provider (Dex, started here) over HTTP, and what goes wrong with it: a replayed state,
 * a tampered, expired or wrong-audience token, an e-mail the provider did not verify, a person with no role, a change
 * without the session's CSRF token, and a provider that went down (sign-in says so; sessions already open go on).
 * Two API apps share the session directory, as two API processes of a deployment do.
 */
const noDex = dexMissing();

describe('sign-in through the provider: faults', { skip: noDex }, () => {
  let env: TestWorkflowEnvironment;
  let provider: OidcProvider;
  const servers: Server[] = [];
  const stops: Array<() => Promise<void>> = [];
  let apiUrl: string;
  /** A second API process: same configuration, same session directory, its own memory. */
  let otherApiUrl: string;
  let sessionDir: string;
  /** A consultant's session cookie, opened in the first test. */
  let consultantCookie: string;
  let consultantCsrf: string;

  const listen = async (app: ReturnType<typeof createApp>, port: number) => {
    const server = await new Promise<Server>((ok) => {
      const s = app.listen(port, '127.0.0.1', () => ok(s));
    });
    servers.push(server);
    return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  };

  const apiFor = (providerEnv: Record<string, string>) =>
    createApp({
      client: env.client,
      taskQueue: `signin-${process.pid}`,
      policy: defaultRequestPolicy,
      apiKeys: new ApiKeyStore([]),
      ...signInFrom(loadConfig({ ...providerEnv, SESSION_DIR: sessionDir })),
    });

  const session = (url: string, cookie: string | undefined, headers: Record<string, string> = {}) => fetch(`${url}/api/session`, { headers: { ...(cookie ? { cookie: `pveflow_session=${cookie}` } : {}), ...headers } });
  const withBearer = (url: string, token: string) => fetch(`${url}/api/session`, { headers: { authorization: `Bearer ${token}` } });

  /** Walks the code flow for `user` and visits the callback: the answer, and the session cookie when one was set. */
  const signIn = async (user: (typeof testUsers)[keyof typeof testUsers]) => {
    const { callbackUrl, loginCookie } = await walkToCallback(apiUrl, user);
    const res = await fetch(callbackUrl, { redirect: 'manual', headers: { cookie: `pveflow_login=${loginCookie}` } });
    return { res, cookie: setCookie(res, 'pveflow_session') || undefined, callbackUrl, loginCookie };
  };

  before(async () => {
    sessionDir = mkdtempSync(join(tmpdir(), 'pveflow-sessions-'));
    env = await TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path: requireTemporalBinary('temporal') }, searchAttributes: searchAttributeDefinitions },
    });
    const port = await freePort();
    apiUrl = `http://127.0.0.1:${port}`;
    provider = await startOidcProvider({ apiUrl });
    stops.push(provider.stop);
    await listen(apiFor(provider.env), port);
    otherApiUrl = await listen(apiFor(provider.env), 0);
  });

  after(async () => {
    for (const s of servers) await new Promise<void>((ok) => s.close(() => ok()));
    for (const stop of stops) await stop().catch(() => {});
    await env?.teardown();
    rmSync(sessionDir, { recursive: true, force: true });
  });

  test('a consultant signs in at the provider; the session holds in another API process; a change needs its CSRF header', async () => {
    const { res, cookie } = await signIn(testUsers.consultant);
    assert.equal(res.status, 303, await res.text());
    assert.equal(res.headers.get('location'), '/');
    assert.ok(cookie, 'a session cookie is set');
    const line = res.headers.getSetCookie().find((l) => l.startsWith('pveflow_session='))!;
    assert.match(line, /HttpOnly/);
    assert.match(line, /SameSite=Lax/);
    assert.doesNotMatch(line, /Secure/, 'plain http on a loopback address only');
    consultantCookie = cookie;

    const me = await session(otherApiUrl, cookie);
    assert.equal(me.status, 200);
    const body = (await me.json()) as Record<string, string>;
    assert.equal(body.role, 'requester');
    assert.equal(body.org, 'Acme Corp');
    assert.equal(body.email, testUsers.consultant.email, 'the e-mail the provider verified');
    assert.ok(body.csrf_token);
    consultantCsrf = body.csrf_token!;

    const post = (headers: Record<string, string>) =>
      fetch(`${otherApiUrl}/api/device_requests`, { method: 'POST', headers: { cookie: `pveflow_session=${cookie}`, 'content-type': 'application/json', ...headers }, body: '{}' });
    const forged = await post({});
    assert.equal(forged.status, 403);
    assert.match(((await forged.json()) as { detail: string }).detail, /x-pveflow-csrf/);
    const wrong = await post({ 'x-pveflow-csrf': 'A'.repeat(consultantCsrf.length) });
    assert.equal(wrong.status, 403);
    const sent = await post({ 'x-pveflow-csrf': consultantCsrf });
    assert.equal(sent.status, 400, 'past authentication, the body itself is judged');
  });

  test('a replayed state, or a callback in a browser that did not start the sign-in, is refused and opens no session', async () => {
    const { res, callbackUrl, loginCookie } = await signIn(testUsers.acmeAdmin);
    assert.equal(res.status, 303);
    const replay = await fetch(callbackUrl, { redirect: 'manual', headers: { cookie: `pveflow_login=${loginCookie}` } });
    assert.equal(replay.status, 400);
    assert.match(await replay.text(), /already been used or has expired/);
    assert.equal(setCookie(replay, 'pveflow_session'), undefined);

    const fresh = await walkToCallback(apiUrl, testUsers.acmeAdmin);
    const elsewhere = await fetch(fresh.callbackUrl, { redirect: 'manual' });
    assert.equal(elsewhere.status, 400);
    assert.match(await elsewhere.text(), /not started in this browser/);
  });

  test("the provider's tokens are bearers for the CLI and scripts: signature, audience and claims checked", async () => {
    const tokens = await provider.passwordTokens(testUsers.acmeAdmin);
    for (const token of [tokens.access_token, tokens.id_token]) {
      const res = await withBearer(apiUrl, token);
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { id: testUsers.acmeAdmin.email, role: 'admin', org: 'Acme Corp', email: testUsers.acmeAdmin.email });
    }

    // Tampered: the same signature over a payload that names someone else's groups.
    const [head, payload, signature] = tokens.access_token.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
    const forged = `${head}.${Buffer.from(JSON.stringify({ ...claims, groups: ['pveflow-operators'] })).toString('base64url')}.${signature}`;
    const tampered = await withBearer(apiUrl, forged);
    assert.equal(tampered.status, 401);
    assert.match(((await tampered.json()) as { detail: string }).detail, /not signed by the provider/);

    // Another application's token at the same provider: valid, but not for pveflow.
    const foreign = await withBearer(apiUrl, (await provider.passwordTokens(testUsers.acmeAdmin, otherClient)).access_token);
    assert.equal(foreign.status, 401);
    assert.match(((await foreign.json()) as { detail: string }).detail, /aud/);
  });

  test('an e-mail the provider did not verify, and a person in no mapped group, get a clear 403', async () => {
    const unverified = await signIn(testUsers.unverified);
    assert.equal(unverified.res.status, 403);
    assert.match(await unverified.res.text(), /has not verified the e-mail of uma@acme\.example/);
    assert.equal(unverified.cookie, undefined, 'no session');
    const bearer = await withBearer(apiUrl, (await provider.passwordTokens(testUsers.unverified)).access_token);
    assert.equal(bearer.status, 403);

    const outsider = await signIn(testUsers.outsider);
    assert.equal(outsider.res.status, 403);
    const page = await outsider.res.text();
    assert.match(page, /<h1>No access to pveflow<\/h1>/);
    assert.match(page, /has no role in pveflow: none of their groups \(staff\) is mapped/);
  });

  test('an expired token is refused as expired', async () => {
    const port = await freePort();
    const shortLived = await startOidcProvider({ apiUrl: `http://127.0.0.1:${port}`, tokenLifetime: '2s' });
    stops.push(shortLived.stop);
    const url = await listen(apiFor(shortLived.env), port);
    const token = (await shortLived.passwordTokens(testUsers.operator)).access_token;
    const exp = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).exp as number;
    await waitFor('the token to expire', async () => (Date.now() / 1000 > exp + 1 ? true : undefined), 30_000, 250);
    const res = await withBearer(url, token);
    assert.equal(res.status, 401);
    assert.match(((await res.json()) as { detail: string }).detail, /expired/);
  });

  test('sign-out needs the CSRF header, ends the session in every API process, and sends the browser to the provider', async () => {
    const forged = await fetch(`${apiUrl}/auth/logout`, { method: 'POST', headers: { cookie: `pveflow_session=${consultantCookie}` } });
    assert.equal(forged.status, 403);
    assert.equal((await session(otherApiUrl, consultantCookie)).status, 200, 'a forged sign-out ends nothing');

    const out = await fetch(`${apiUrl}/auth/logout`, { method: 'POST', headers: { cookie: `pveflow_session=${consultantCookie}`, 'x-pveflow-csrf': consultantCsrf } });
    assert.equal(out.status, 200);
    const { redirect } = (await out.json()) as { redirect: string };
    const providerLogout = new URL(redirect);
    assert.equal(`${providerLogout.origin}${providerLogout.pathname}`, `${provider.issuer}/logout`, 'RP-initiated sign-out at the provider');
    assert.equal(providerLogout.searchParams.get('post_logout_redirect_uri'), `${apiUrl}/`);
    assert.ok(providerLogout.searchParams.get('id_token_hint'));
    const ended = await session(otherApiUrl, consultantCookie);
    assert.equal(ended.status, 401);
    assert.match(((await ended.json()) as { detail: string }).detail, /session has ended/);
    // The provider accepts the hint and the registered return address: its signed-out page links back to pveflow.
    const back = await fetch(redirect, { redirect: 'manual' });
    assert.equal(back.status, 200);
    assert.ok((await back.text()).includes(`href="${apiUrl}/"`), "the provider's page leads back to pveflow");
  });

  test('a provider that is down: sign-in says so; a session already open keeps working', async () => {
    const { cookie } = await signIn(testUsers.operator);
    assert.ok(cookie);
    await provider.stop();
    const login = await fetch(`${apiUrl}/auth/login`, { redirect: 'manual' });
    assert.equal(login.status, 503);
    const page = await login.text();
    assert.match(page, new RegExp(`the identity provider at ${provider.issuer.replace(/[.]/g, '\\.')}/? cannot be reached`));
    assert.match(page, /Sessions already open keep working/);
    const still = await session(otherApiUrl, cookie);
    assert.equal(still.status, 200);
    assert.equal(((await still.json()) as { role: string }).role, 'operator');
  });
});
