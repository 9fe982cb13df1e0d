import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Client } from '@temporalio/client';
import { ApiKeyStore, generateApiKey, hashApiKey, type Principal } from '../src/api/auth/apiKeys';
import { DeploymentKeys } from '../src/api/auth/apiKeysIssued';
import { keyIssueRefusal, keyManagementRefusal, keyScopeOf } from '../src/api/auth/apiKeysRules';
import type { IssuedKey, IssuedKeysAnswer, KeyUse } from '../src/contracts/apiKeyRegistryMessages';
import { EXPIRED_KEY_KEPT_DAYS, MAX_ISSUED_KEYS, MAX_KEY_USE, isExpired, issueRefusal, keysToCarry, mergeKeyUse, revokeRefusal } from '../src/domain/apiKeyRegistry';

/** The key registry's rules and who may manage which key, without Temporal; and an API process's copy against a stub registry. */
const operator: Principal = { role: 'operator', id: 'ops' };
const admin: Principal = { role: 'admin', id: 'ada', org: 'Acme Corp', email: 'ada@acme.example' };
const requester: Principal = { role: 'requester', id: 'rita', org: 'Acme Corp', email: 'rita@acme.example' };
const key = (id: string, extra: Partial<IssuedKey> = {}): IssuedKey => ({
  id,
  name: id,
  role: 'admin',
  org: 'Acme Corp',
  owner: 'operator:ops',
  createdAt: '2026-01-01T00:00:00.000Z',
  sha256: hashApiKey(`secret-of-${id}`),
  ...extra,
});

describe('who manages which API key', () => {
  test('an operator issues any key; an admin requester and admin keys of its own org; a requester none', () => {
    assert.equal(keyIssueRefusal(operator, { role: 'operator' }), undefined);
    assert.equal(keyIssueRefusal(operator, { role: 'admin', org: 'Globex' }), undefined);
    assert.equal(keyIssueRefusal(admin, { role: 'requester', org: 'Acme Corp' }), undefined);
    assert.equal(keyIssueRefusal(admin, { role: 'admin', org: 'Acme Corp' }), undefined);
    assert.match(keyIssueRefusal(admin, { role: 'operator' })!, /may issue requester and admin keys only, not operator keys/);
    assert.match(keyIssueRefusal(admin, { role: 'requester', org: 'Globex' })!, /only for its own org Acme Corp/);
    assert.match(keyIssueRefusal(requester, { role: 'requester', org: 'Acme Corp' })!, /needs the role operator or admin; key rita is a requester/);
    assert.equal(keyManagementRefusal(admin), undefined);
    assert.deepEqual([keyScopeOf(operator), keyScopeOf(admin)], [undefined, 'Acme Corp']);
  });
});

describe('the key registry rules', () => {
  test('an id or a hash is issued once; a retry of the same issue is taken; a full registry refuses', () => {
    const keys = [key('k1')];
    assert.equal(issueRefusal(keys, key('k1')), undefined, 'the same id and hash: a retry');
    assert.match(issueRefusal(keys, key('k1', { sha256: hashApiKey('other') }))!, /id k1 exists already/);
    assert.match(issueRefusal(keys, key('k2', { sha256: keys[0]!.sha256 }))!, /issued already/);
    assert.match(issueRefusal(keys, key('k3', { role: 'operator' }))!, /operator key has no org/);
    assert.match(issueRefusal(keys, key('k3', { role: 'requester' }))!, /needs an email/);
    const full = Array.from({ length: MAX_ISSUED_KEYS }, (_, i) => key(`k${i}`));
    assert.match(issueRefusal(full, key('one-more'))!, new RegExp(`holds ${MAX_ISSUED_KEYS} keys`));
  });

  test('an admin revokes only keys of its org, and another org’s key reads as unknown', () => {
    const keys = [key('acme'), key('globex', { org: 'Globex' })];
    assert.equal(revokeRefusal(keys, 'acme', 'Acme Corp'), undefined);
    assert.equal(revokeRefusal(keys, 'globex', 'Acme Corp'), 'no API key globex');
    assert.equal(revokeRefusal(keys, 'nope', undefined), 'no API key nope');
    assert.equal(revokeRefusal(keys, 'globex', undefined), undefined);
  });

  test('keys expired long ago are dropped at continue-as-new; the last use keeps the latest, bounded', () => {
    const now = Date.parse('2026-06-01T00:00:00Z');
    const old = key('old', { expiresAt: new Date(now - (EXPIRED_KEY_KEPT_DAYS + 1) * 86_400_000).toISOString() });
    const recent = key('recent', { expiresAt: new Date(now - 86_400_000).toISOString() });
    assert.deepEqual(
      keysToCarry([old, recent, key('forever')], now).map((k) => k.id),
      ['recent', 'forever'],
    );
    assert.equal(isExpired(recent, now), true);
    assert.equal(isExpired(key('forever'), now), false);
    assert.deepEqual(mergeKeyUse({ a: '2026-01-02T00:00:00Z' }, { a: '2026-01-01T00:00:00Z', b: '2026-01-03T00:00:00Z', c: 'not a date' }), {
      a: '2026-01-02T00:00:00Z',
      b: '2026-01-03T00:00:00Z',
    });
    const many: KeyUse = Object.fromEntries(Array.from({ length: MAX_KEY_USE + 5 }, (_, i) => [`k${i}`, new Date(now + i * 1000).toISOString()]));
    const kept = mergeKeyUse({}, many);
    assert.equal(Object.keys(kept).length, MAX_KEY_USE);
    assert.ok(!('k0' in kept) && `k${MAX_KEY_USE + 4}` in kept, 'the oldest uses go first');
  });
});

describe("an API process's copy of the issued keys", () => {
  /** A registry that answers the copy's query as the workflow does, and records the use signals. */
  const stubRegistry = (state: { version: number; keys: IssuedKey[]; failing?: boolean; signals: KeyUse[]; queries: number }) =>
    ({
      withDeadline: (_deadline: number, fn: () => Promise<unknown>) => fn(),
      workflow: {
        getHandle: () => ({
          query: async (_q: unknown, { since }: { since?: number }): Promise<IssuedKeysAnswer> => {
            state.queries++;
            if (state.failing) throw new Error('unavailable');
            return since === state.version ? { version: state.version } : { version: state.version, keys: state.keys };
          },
          signal: async (_s: unknown, { used }: { used: KeyUse }) => void state.signals.push(used),
        }),
      },
    }) as unknown as Client;

  test('takes keys, refuses them once revoked or expired, reports use at most once a minute, and refuses issued keys when its copy is stale', async () => {
    const secret = generateApiKey();
    const fileSecret = generateApiKey();
    let now = Date.parse('2026-06-01T00:00:00Z');
    const state = { version: 1, keys: [key('k1', { sha256: hashApiKey(secret), expiresAt: new Date(now + 3_600_000).toISOString() })], signals: [] as KeyUse[], queries: 0, failing: false };
    const keys = new DeploymentKeys(new ApiKeyStore([{ id: 'ops', role: 'operator', key: fileSecret }]), { client: stubRegistry(state), taskQueue: 'q', now: () => now });
    await keys.start();
    try {
      assert.deepEqual(keys.authenticate(secret), { role: 'admin', id: 'k1', org: 'Acme Corp' });
      assert.equal(keys.authenticate(fileSecret)?.id, 'ops');
      assert.equal(keys.authenticate(generateApiKey()), undefined);
      assert.equal(keys.explain(generateApiKey()), undefined, 'an unknown key is plainly unknown');

      await keys.refresh();
      assert.deepEqual(state.signals, [{ k1: new Date(now).toISOString(), ops: new Date(now).toISOString() }]);
      now += 30_000;
      keys.authenticate(secret);
      await keys.refresh();
      assert.equal(state.signals.length, 1, 'a second use within the minute is not reported');
      now += 31_000;
      await keys.refresh(); // the copy is read every 2 s; here, each time the clock moves
      keys.authenticate(secret);
      await keys.refresh();
      assert.deepEqual(state.signals[1], { k1: new Date(now).toISOString() });

      now += 3_600_000;
      await keys.refresh();
      assert.equal(keys.authenticate(secret), undefined, 'expired');
      assert.deepEqual(keys.explain(secret), { status: 401, detail: `API key k1 expired at ${state.keys[0]!.expiresAt}` });

      state.keys = [key('k2', { sha256: hashApiKey(secret) })];
      state.version++;
      await keys.refresh();
      assert.equal(keys.authenticate(secret)?.id, 'k2', 'a new version is read in full');
      state.keys = [];
      state.version++;
      await keys.refresh();
      assert.equal(keys.authenticate(secret), undefined, 'revoked');

      state.keys = [key('k3', { sha256: hashApiKey(secret) })];
      state.version++;
      await keys.refresh();
      state.failing = true;
      now += 29_000;
      await keys.refresh();
      assert.equal(keys.authenticate(secret)?.id, 'k3', 'a copy a little old still holds');
      now += 2_000;
      assert.equal(keys.authenticate(secret), undefined, 'a stale copy refuses issued keys');
      assert.equal(keys.explain(secret)?.status, 503);
      assert.equal(keys.authenticate(fileSecret)?.id, 'ops', 'the file’s keys still work');
    } finally {
      state.failing = false;
      await keys.stop();
    }
  });
});
