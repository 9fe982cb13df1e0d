import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { identityFromClaims } from '../src/api/auth/oidcIdentity';
import { oidcSettingsFrom, type RoleGrant } from '../src/api/auth/oidcSettings';
import { SessionStore } from '../src/api/auth/sessionStore';
import { ConfigError, loadConfig } from '../src/config';

/** Who a person is from the provider's claims, the sign-in settings' checks, and the sessions' expiry: no provider. */
const roles: Record<string, RoleGrant> = {
  'acme-requesters': { role: 'requester', org: 'Acme Corp' },
  'acme-admins': { role: 'admin', org: 'Acme Corp' },
  'globex-admins': { role: 'admin', org: 'Globex' },
  ops: { role: 'operator' },
};

const settings = { roles, groupsClaim: 'groups', emailVerifiedClaim: 'email_verified' };

describe('identity from the provider', () => {
  const who = (claims: Record<string, unknown>) => identityFromClaims({ sub: 'u1', ...claims }, settings);
  const cases: Array<[string, Record<string, unknown>, unknown]> = [
    [
      'a verified requester',
      { email: 'Carla@Example.com', email_verified: true, groups: ['acme-requesters', 'staff'] },
      { principal: { role: 'requester', id: 'carla@example.com', org: 'Acme Corp', email: 'carla@example.com' } },
    ],
    [
      'the highest role in one org',
      { email: 'a@x.example', email_verified: true, groups: ['acme-requesters', 'acme-admins'] },
      { principal: { role: 'admin', id: 'a@x.example', org: 'Acme Corp', email: 'a@x.example' } },
    ],
    ['an operator, whatever else', { email: 'o@x.example', email_verified: true, groups: ['globex-admins', 'ops'] }, { principal: { role: 'operator', id: 'o@x.example', email: 'o@x.example' } }],
    ['an admin whose e-mail is not verified: no e-mail', { email: 'a@x.example', email_verified: false, groups: ['acme-admins'] }, { principal: { role: 'admin', id: 'oidc:u1', org: 'Acme Corp' } }],
    ['a single group as a string', { email: 'o@x.example', groups: 'ops' }, { principal: { role: 'operator', id: 'oidc:u1' } }],
  ];
  for (const [name, claims, expected] of cases) test(name, () => assert.deepEqual(who(claims), expected));

  test("a provider that vouches under another claim's name (Entra ID's xms_edov)", () => {
    const entra = { ...settings, emailVerifiedClaim: 'xms_edov' };
    assert.deepEqual(identityFromClaims({ sub: 'u1', email: 'r@x.example', xms_edov: true, groups: ['acme-requesters'] }, entra), {
      principal: { role: 'requester', id: 'r@x.example', org: 'Acme Corp', email: 'r@x.example' },
    });
    assert.ok('refusal' in identityFromClaims({ sub: 'u1', email: 'r@x.example', email_verified: true, groups: ['acme-requesters'] }, entra));
  });

  test('refusals say why', () => {
    const refusal = (claims: Record<string, unknown>) => {
      const answer = who(claims);
      assert.ok('refusal' in answer, JSON.stringify(answer));
      return answer.refusal;
    };
    assert.match(refusal({ email: 'r@x.example', email_verified: false, groups: ['acme-requesters'] }), /has not verified the e-mail of r@x\.example/);
    assert.match(refusal({ email: 'r@x.example', email_verified: true, groups: ['staff'] }), /no role in pveflow: none of their groups \(staff\)/);
    assert.match(refusal({ email: 'r@x.example', email_verified: true }), /no "groups" claim/);
    assert.match(refusal({ email: 'r@x.example', email_verified: true, groups: ['acme-admins', 'globex-admins'] }), /several organisations \(Acme Corp, Globex\)/);
    assert.deepEqual(identityFromClaims({ groups: ['ops'] }, settings), { refusal: 'the provider named no subject (sub) for this sign-in' });
    // A group named like an inherited property maps to nothing.
    assert.match(refusal({ email: 'r@x.example', email_verified: true, groups: ['constructor', 'toString'] }), /no role/);
  });
});

describe('sign-in settings', () => {
  const good = {
    OIDC_ISSUER: 'https://login.example/realms/acme',
    OIDC_CLIENT_ID: 'pveflow',
    OIDC_REDIRECT_URL: 'https://pveflow.example/auth/callback',
    OIDC_ROLES: JSON.stringify(roles),
  };

  test('none without an issuer; a complete configuration is taken', () => {
    assert.equal(oidcSettingsFrom(loadConfig({})), undefined);
    const s = oidcSettingsFrom(loadConfig({ ...good, OIDC_CLI_CLIENT_ID: 'pveflow-cli' }))!;
    assert.deepEqual(s.audiences, ['pveflow', 'pveflow-cli']);
    assert.equal(s.secureCookies, true);
    assert.equal(s.allowHttp, false);
    assert.equal(oidcSettingsFrom(loadConfig({ ...good, OIDC_REDIRECT_URL: 'http://127.0.0.1:3000/auth/callback', OIDC_ISSUER: 'http://127.0.0.1:5556/dex' }))!.secureCookies, false);
  });

  test('every mistake is named by its variable, at start-up', () => {
    const errorOf = (env: Record<string, string>) => {
      try {
        oidcSettingsFrom(loadConfig(env));
      } catch (err) {
        assert.ok(err instanceof ConfigError);
        return err.message;
      }
      assert.fail('accepted');
    };
    const all = errorOf({ OIDC_ISSUER: 'http://login.example', OIDC_ROLES: '{"x": {"role": "boss"}}' });
    assert.match(all, /OIDC_ISSUER: must be https/);
    assert.match(all, /OIDC_CLIENT_ID: required/);
    assert.match(all, /OIDC_REDIRECT_URL: required/);
    assert.match(all, /OIDC_ROLES: x/);
    assert.match(errorOf({ ...good, OIDC_ROLES: 'nope' }), /OIDC_ROLES: not valid JSON/);
    assert.match(errorOf({ ...good, OIDC_ROLES: '{"g": {"role": "admin"}}' }), /OIDC_ROLES: g\.org/);
    assert.match(errorOf({ ...good, OIDC_REDIRECT_URL: 'https://pveflow.example/callback' }), /path must be \/auth\/callback/);
    assert.match(errorOf({ ...good, OIDC_REDIRECT_URL: 'http://pveflow.example/auth/callback' }), /must be https outside this machine/);
    assert.match(errorOf({ OIDC_CLIENT_ID: 'pveflow' }), /OIDC_CLIENT_ID set without OIDC_ISSUER/);
  });
});

describe('session store', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pveflow-session-rules-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let now = 1_000_000;
  const store = new SessionStore(dir, { idleMs: 10 * 60_000, maxMs: 60 * 60_000 }, () => now);
  const principal = { role: 'operator' as const, id: 'o@x.example', email: 'o@x.example' };

  test('a session ends when idle too long, and at its absolute end however busy', async () => {
    const idle = await store.create(principal);
    now += 9 * 60_000;
    assert.ok(await store.get(idle.cookie), 'used within the idle time');
    now += 9 * 60_000;
    assert.ok(await store.get(idle.cookie), 'the last use counts, not the sign-in');
    now += 11 * 60_000;
    assert.equal(await store.get(idle.cookie), undefined, 'idle too long');

    const busy = await store.create(principal);
    for (let i = 0; i < 6; i++) {
      now += 9 * 60_000;
      assert.ok(await store.get(busy.cookie));
    }
    now += 9 * 60_000;
    assert.equal(await store.get(busy.cookie), undefined, 'past the absolute end');
  });

  test('files are named by the hash of the cookie, readable by the API alone; a login is taken once', async () => {
    const { cookie } = await store.create(principal);
    const names = readdirSync(dir);
    assert.ok(!names.some((n) => n.includes(cookie)));
    for (const n of names.filter((n) => n !== 'logins')) assert.equal(statSync(join(dir, n)).mode & 0o077, 0);
    const state = await store.startLogin({ verifier: 'v', nonce: 'n' });
    assert.deepEqual(await store.takeLogin(state), { verifier: 'v', nonce: 'n', createdAt: now });
    assert.equal(await store.takeLogin(state), undefined);
    const stale = await store.startLogin({ verifier: 'v', nonce: 'n' });
    now += 11 * 60_000;
    assert.equal(await store.takeLogin(stale), undefined, 'a sign-in left at the provider page too long');
  });

  test('records nobody came back to are swept when later sessions open', async () => {
    const sweepDir = mkdtempSync(join(tmpdir(), 'pveflow-session-sweep-'));
    try {
      let at = 5_000_000;
      const swept = new SessionStore(sweepDir, { idleMs: 10 * 60_000, maxMs: 60 * 60_000 }, () => at);
      await swept.create(principal);
      await swept.startLogin({ verifier: 'v', nonce: 'n' });
      at += 11 * 60_000;
      const { cookie } = await swept.create(principal);
      assert.equal(readdirSync(sweepDir).filter((n) => n !== 'logins').length, 1, 'only the new session is left');
      assert.deepEqual(readdirSync(join(sweepDir, 'logins')), []);
      assert.ok(await swept.get(cookie));
    } finally {
      rmSync(sweepDir, { recursive: true, force: true });
    }
  });
});
