import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { syncScheduleId } from '../src/contracts/workflowIds';
import { browserMissing, startBrowserPages, type BrowserPages } from './support/browser';
import { dexMissing, startOidcProvider, testPassword, testUsers, type OidcProvider, type TestUser } from './support/oidcProvider';
import { freePort } from './support/ports';
import { startTestStack, type TestStack } from './support/testStack';
import { waitFor } from './support/waitFor';

/**
 * People sign in to the console through a real identity provider (Dex, on its own login page) in a real Chromium and
 * do their role's job on the embedded default: a consultant files a request as themselves, an admin of the org approves
 * it, the consultant reveals the logins because the provider vouched for their e-mail, then signs out at pveflow and
 * at the provider. A person the provider knows but pveflow gives no role sees a 403 page. No API key anywhere.
 */
const skip = browserMissing() ?? dexMissing();
const artifacts = join(__dirname, '..', 'test-artifacts', 'sign-in');

describe('sign-in through the provider in a real browser', { skip }, () => {
  let running: TestStack | undefined;
  let provider: OidcProvider | undefined;
  let browser: BrowserPages | undefined;
  let apiUrl: string;

  const open = () => browser!.open();
  const shot = (page: Page, name: string) => browser!.shot(page, name);

  /** From the console's sign-in page through the provider's own login form. */
  const signIn = async (page: Page, user: TestUser, screenshot?: string) => {
    await page.goto(`${apiUrl}/`);
    await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
    await page.getByRole('link', { name: 'Sign in with your organisation' }).click();
    await page.waitForURL((url) => url.href.startsWith(provider!.issuer));
    await page.locator('#login').fill(user.email);
    await page.locator('#password').fill(testPassword);
    if (screenshot) await shot(page, screenshot);
    await page.locator('#submit-login').click();
  };

  /** The consultant's view of the API, with a token the provider issued (the CLI's way in). */
  const asConsultant = async (path: string) => {
    const { access_token } = await provider!.passwordTokens(testUsers.consultant);
    const res = await fetch(`${apiUrl}${path}`, { headers: { authorization: `Bearer ${access_token}` } });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  before(async () => {
    const port = await freePort();
    apiUrl = `http://127.0.0.1:${port}`;
    provider = await startOidcProvider({ apiUrl });
    // No API key at all: people come in through the provider alone.
    running = await startTestStack('signin', [], { ...provider.env, API_PORT: String(port) });
    assert.equal(running.stack.apiUrl, apiUrl);
    await running.stack.client.schedule.getHandle(syncScheduleId(running.stack.temporal.taskQueue)).trigger();
    browser = await startBrowserPages(artifacts, { viewport: { width: 1280, height: 860 } });
    await waitFor('the first cluster sync', async () => ((await asConsultant('/api/templates')).status === 200 ? true : undefined), 60_000, 500);
  });

  after(async () => {
    await browser?.close();
    await running?.stop();
    await provider?.stop();
  });

  test('a consultant files, an admin approves, the consultant reveals the logins and signs out', async () => {
    // ── The consultant signs in at the provider's own page and lands in the console as themselves.
    const consultant = await open();
    await signIn(consultant, testUsers.consultant, 'provider-login');
    await consultant.getByRole('heading', { level: 1, name: 'Requests' }).waitFor();
    await consultant.getByRole('banner').getByText(testUsers.consultant.email).waitFor();
    await consultant.getByRole('banner').getByText('Requester · Acme Corp').waitFor();
    const cookies = await consultant.context().cookies(apiUrl);
    const sessionCookie = cookies.find((c) => c.name === 'pveflow_session');
    assert.ok(sessionCookie?.httpOnly, 'the session is an HttpOnly cookie');
    assert.equal(sessionCookie.sameSite, 'Lax');
    assert.equal(await consultant.evaluate('sessionStorage.getItem("pveflow.apiKey")'), null, 'no key in the page');

    // ── Files a request: as themselves, their verified e-mail the first consultant.
    await consultant.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'New request' }).click();
    await consultant.getByRole('heading', { level: 1, name: 'New request' }).waitFor();
    await waitFor('the images in the form', async () => ((await consultant.getByLabel('Image').inputValue()) === 'debian-12-cloudinit' ? true : undefined));
    assert.equal(await consultant.getByLabel('Consultants').inputValue(), testUsers.consultant.email);
    await consultant.getByLabel('VM name', { exact: true }).fill('sso-box');
    await consultant.getByRole('button', { name: 'Submit request' }).click();
    await consultant.waitForURL(/#\/requests\/VM-[0-9A-Z]{5}$/);
    const serial = /VM-[0-9A-Z]{5}$/.exec(consultant.url())![0];
    const filed = await asConsultant(`/api/device_requests/${serial}`);
    assert.equal((filed.body.request as { requester: string }).requester, testUsers.consultant.email, 'a requester files as themselves');
    assert.equal(await consultant.getByRole('button', { name: 'Approve' }).count(), 0);

    // ── An admin of Acme Corp signs in at the provider in another browser and approves it.
    const admin = await open();
    await signIn(admin, testUsers.acmeAdmin);
    await admin.getByRole('banner').getByText('Admin · Acme Corp').waitFor();
    const row = admin.getByRole('link', { name: serial });
    await waitFor('the request in the admin list', async () => {
      if (await row.count()) return true;
      await admin.getByRole('button', { name: 'Apply' }).click();
      return undefined;
    });
    await row.click();
    await admin.getByRole('button', { name: 'Approve' }).click();
    await admin.getByRole('dialog').getByRole('button', { name: 'Approve' }).click();
    await admin.getByText(`Approve: done. ${serial} is Approved; build 1 queued.`).waitFor();

    // ── The build runs; the consultant's e-mail, vouched for by the provider, is on the request: the logins are theirs.
    await consultant.locator('[role="progressbar"][aria-valuenow="100"]').waitFor({ timeout: 120_000 });
    const mine = await open();
    await signIn(mine, testUsers.consultant);
    await mine.getByLabel('Only my VMs').check();
    await mine.getByRole('button', { name: 'Apply' }).click();
    await waitFor("the request among the consultant's VMs", async () => {
      if (await mine.getByRole('link', { name: serial }).count()) return true;
      await mine.getByRole('button', { name: 'Apply' }).click();
      return undefined;
    });
    await consultant.getByRole('button', { name: 'Reveal logins' }).click();
    await consultant.getByRole('dialog').getByRole('button', { name: 'Reveal' }).click();
    const password = await waitFor('the revealed password', async () => {
      const cell = consultant.locator('dt:text-is("Password") + dd');
      return (await cell.count()) ? ((await cell.textContent()) ?? undefined) : undefined;
    });
    assert.ok(password.length >= 12);
    await shot(consultant, 'revealed');

    // ── Sign-out: the session ends at pveflow, then the provider's own sign-out page leads back.
    await consultant.getByRole('button', { name: 'Sign out' }).click();
    await consultant.waitForURL((url) => url.href.startsWith(`${provider!.issuer}/logout`));
    await shot(consultant, 'provider-logout');
    const gone = await consultant.context().request.get(`${apiUrl}/api/session`);
    assert.equal(gone.status(), 401, 'the session is over');
    await consultant.goto(`${apiUrl}/`);
    await consultant.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();

    assert.deepEqual(browser!.problems, []);
  });

  test('a person the provider knows but pveflow gives no role sees a 403 page, not an empty console', async () => {
    const outsider = await open();
    await signIn(outsider, testUsers.outsider);
    await outsider.getByRole('heading', { level: 1, name: 'No access to pveflow' }).waitFor();
    assert.match((await outsider.getByRole('alert').textContent()) ?? '', /otto@elsewhere\.example has no role in pveflow/);
    await shot(outsider, 'no-role');
    const unverified = await open();
    await signIn(unverified, testUsers.unverified);
    await unverified.getByRole('heading', { level: 1, name: 'No access to pveflow' }).waitFor();
    assert.match((await unverified.getByRole('alert').textContent()) ?? '', /has not verified the e-mail/);
  });
});
