import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { generateApiKey } from '../src/api/auth/apiKeys';
import { SESSION_COOKIE } from '../src/api/temporalUi/operatorSessions';
import { browserMissing, launchChromium } from './support/browser';
import { validRequestBody } from './support/requests';
import { apiRequestDriver, keyedApiCall } from './support/apiRequestDriver';
import { readWorkflowInTemporalUi } from './support/temporalUiCheck';
import { startTestStack, type TestStack } from './support/testStack';

/**
 * Temporal UI on the embedded default decrypts out of the box for operators, whichever name the browser uses for the
 * machine (localhost or 127.0.0.1), and stays closed to everyone else: no session, a requester's key, a forged
 * cookie or a foreign origin get neither the UI nor a payload decoded.
 */
const noBrowser = browserMissing();

describe('Temporal UI through the gateway', { skip: noBrowser }, () => {
  let running: TestStack;
  let browser: Browser;
  let serial: string;
  const operator = { id: 'ops', role: 'operator', key: generateApiKey() };
  const requester = { id: 'rita', role: 'requester', org: 'Acme Corp', email: 'rita@acme.example', key: generateApiKey() };

  before(async () => {
    running = await startTestStack('temporal-ui', [operator, requester]);
    browser = await launchChromium();
    // The operator submits: its key is the one the test holds in clear.
    const requests = apiRequestDriver(keyedApiCall(() => running.stack.apiUrl, operator.key));
    serial = (await requests.startPending(validRequestBody({ name: 'ui-decoded-name' }))).serial;
  });

  after(async () => {
    await browser?.close();
    await running?.stop();
  });

  const uiAt = (host: string) => running.stack.temporal.uiUrl!.replace('127.0.0.1', host);

  for (const host of ['127.0.0.1', 'localhost']) {
    test(`an operator signed in at ${host} reads the request's input decrypted, with no key pasted per page`, async () => {
      const text = await readWorkflowInTemporalUi(browser, { uiUrl: uiAt(host), operatorKey: operator.key, workflowId: `vm-request-${serial}`, expectText: 'ui-decoded-name' });
      assert.match(text, /rita@acme\.example/);
    });
  }

  test('nobody else gets the UI or a payload decoded', async () => {
    const ui = uiAt('127.0.0.1');
    const decode = (headers: Record<string, string>) => fetch(`${ui}/codec/decode`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-namespace': 'default', ...headers }, body: '{"payloads":[]}' });
    assert.equal((await decode({})).status, 401, 'no session, no key');
    assert.equal((await decode({ authorization: `Bearer ${requester.key}` })).status, 401, "a requester's key");
    assert.equal((await decode({ cookie: `${SESSION_COOKIE}=b3Bz.99999999999999.forged` })).status, 401, 'a forged session');
    assert.equal((await decode({ authorization: `Bearer ${operator.key}` })).status, 200, "an operator's key (the CLI's way)");
    assert.equal((await decode({ authorization: `Bearer ${operator.key}`, origin: 'http://evil.example' })).status, 403, 'a foreign origin');

    const signIn = (key: string) =>
      fetch(`${ui}/pveflow/sign-in`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ key, next: '//evil.example/' }) });
    assert.equal((await signIn(requester.key)).status, 401, 'only operators sign in');
    const ok = await signIn(operator.key);
    assert.equal(ok.status, 303);
    assert.equal(ok.headers.get('location'), '/', 'never redirected off this origin');
    const cookie = ok.headers.get('set-cookie') ?? '';
    assert.match(cookie, /HttpOnly/i);
    assert.match(cookie, /SameSite=Strict/i);

    const page = await fetch(`${ui}/namespaces/default/workflows`, { redirect: 'manual', headers: { accept: 'text/html' } });
    assert.equal(page.status, 302, 'the UI itself needs a session');
    assert.equal((await fetch(`${ui}/api/v1/namespaces/default/workflows`)).status, 401, "and so does the UI's API");
  });
});
