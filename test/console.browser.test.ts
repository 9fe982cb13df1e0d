import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { BrowserContextOptions, Page } from 'playwright-core';
import { request } from 'undici';
import { generateApiKey } from '../src/api/auth/apiKeys';
import { consoleCsp } from '../src/api/http/console';
import type { EmbeddedStack } from '../src/embedded/stack';
import { browserMissing, startBrowserPages, type BrowserPages } from './support/browser';
import { waitFor } from './support/waitFor';
import { startTestStack, type TestStack } from './support/testStack';
import { syncScheduleId } from '../src/contracts/workflowIds';

/**
 * The web console in a real Chromium against the embedded default (`npm start`'s stack), driven the way people use
 * it: a consultant files a request, an admin approves it in another browser, the consultant follows the build to its
 * IP, collects the logins once and completes it; a key of another org sees none of it. Screenshots of the pages go to
 * test-artifacts/console/.
 */
const noBrowser = browserMissing();

const artifacts = join(__dirname, '..', 'test-artifacts', 'console');
const desktop: BrowserContextOptions = { viewport: { width: 1280, height: 860 } };
const phone: BrowserContextOptions = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

describe('web console in a real browser', { skip: noBrowser }, () => {
  let stack: EmbeddedStack;
  let running: TestStack | undefined;
  let browser: BrowserPages | undefined;

  const keys = {
    consultant: { id: 'alice', role: 'requester', org: 'Acme Corp', email: 'alice@consultancy.example', key: generateApiKey() },
    admin: { id: 'ada', role: 'admin', org: 'Acme Corp', email: 'ada@acme.example', key: generateApiKey() },
    otherOrg: { id: 'gus', role: 'requester', org: 'Globex', email: 'gus@globex.example', key: generateApiKey() },
  };

  const api = async (path: string, as: keyof typeof keys | undefined) => {
    const res = await fetch(`${stack.apiUrl}${path}`, { headers: as ? { authorization: `Bearer ${keys[as].key}` } : {} });
    const text = await res.text();
    return { status: res.status, headers: res.headers, text, body: text && /json/.test(res.headers.get('content-type') ?? '') ? JSON.parse(text) : undefined };
  };

  const open = (options: BrowserContextOptions) => browser!.open(options);
  const shot = (page: Page, name: string) => browser!.shot(page, name);

  const signIn = async (page: Page, as: keyof typeof keys, screenshot?: string) => {
    await page.goto(`${stack.apiUrl}/`);
    await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
    if (screenshot) await shot(page, screenshot);
    await page.getByLabel('API key').fill(keys[as].key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Requests' }).waitFor();
  };

  before(async () => {
    // Globex has a quota (Acme Corp none): the header shows what its open requests hold of it.
    running = await startTestStack('console', Object.values(keys), { PVEFLOW_QUOTAS: JSON.stringify({ Globex: { vms: 3, cores: 12 } }) });
    stack = running.stack;
    // The form offers the templates the newest cluster sync saw: run one now rather than wait for the schedule.
    await stack.client.schedule.getHandle(syncScheduleId(stack.temporal.taskQueue)).trigger();
    browser = await startBrowserPages(artifacts, { timezoneId: 'Europe/Berlin' });
    await waitFor('the first cluster sync', async () => ((await api('/api/templates', 'consultant')).status === 200 ? true : undefined), 60_000, 500);
  });

  after(async () => {
    await browser?.close();
    await running?.stop();
  });

  test('GET /api/session names the key holder, never the key', async () => {
    const me = await api('/api/session', 'consultant');
    assert.equal(me.status, 200);
    assert.deepEqual(me.body, { id: 'alice', role: 'requester', org: 'Acme Corp', email: 'alice@consultancy.example' });
    assert.ok(!me.text.includes(keys.consultant.key));
    assert.equal(me.headers.get('cache-control'), 'no-store');
    assert.equal((await api('/api/session', undefined)).status, 401);
  });

  test('the console is one page under a self-only CSP that never shadows the API', async () => {
    const page = await api('/', undefined);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.equal(page.headers.get('content-security-policy'), consoleCsp);
    assert.match(consoleCsp, /script-src 'self'/);
    assert.doesNotMatch(consoleCsp, /unsafe|https?:/);
    const script = await api('/app.js', undefined);
    assert.match(script.headers.get('content-type') ?? '', /^text\/javascript/);
    assert.ok(script.text.length > 1000, 'the bundle is served');
    // The ETag lets a browser revalidate cheaply (undici's request: fetch() would add Cache-Control: no-cache).
    const revalidated = await request(`${stack.apiUrl}/app.js`, { headers: { 'if-none-match': script.headers.get('etag')! } });
    await revalidated.body.dump();
    assert.equal(revalidated.statusCode, 304);
    // Client routes fall back to the page for a browser; API paths stay the API's.
    const deepLink = await fetch(`${stack.apiUrl}/requests/VM-AAAAA`, { headers: { accept: 'text/html' } });
    assert.equal(deepLink.status, 200);
    assert.match(await deepLink.text(), /<div id="app">/);
    const unknownApi = await fetch(`${stack.apiUrl}/api/nothing`, { headers: { accept: 'text/html' } });
    assert.equal(unknownApi.status, 404);
    assert.match(unknownApi.headers.get('content-type') ?? '', /json/);
    assert.equal((await fetch(`${stack.apiUrl}/metrics-or-anything`, { headers: { accept: 'text/plain' } })).status, 404, 'a machine asking an unknown path is not handed the page');
  });

  test('a consultant files a request, an admin approves it, the consultant follows it to its IP and completes it; another org sees nothing', async () => {
    // ── The consultant signs in; the key stays in the tab's session storage, never in the address.
    const consultant = await open(desktop);
    await signIn(consultant, 'consultant', 'signin-desktop');
    assert.equal(await consultant.evaluate('sessionStorage.getItem("pveflow.apiKey")'), keys.consultant.key);
    assert.ok(!consultant.url().includes(keys.consultant.key));

    // ── New request: the API's 400 shows at its field.
    await consultant.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'New request' }).click();
    await consultant.getByRole('heading', { level: 1, name: 'New request' }).waitFor();
    const image = consultant.getByLabel('Image');
    await waitFor('the images in the form', async () => ((await image.inputValue()) === 'debian-12-cloudinit' ? true : undefined));
    assert.match((await consultant.locator('#vm-image-hint').textContent()) ?? '', /Template debian-12-cloudinit \(9000\)/);
    assert.equal(await consultant.getByLabel('Consultants').inputValue(), 'alice@consultancy.example', 'a requester is its own first consultant');
    await consultant.getByLabel('VM name', { exact: true }).fill('Kali Box');
    await consultant.getByLabel('Consultants').fill('alice@consultancy.example\nbob@consultancy.example');
    // The first boot's choices: a fragment reaching for pveflow's users is refused at its own field too.
    await consultant.getByText('Network and first boot (optional)').click();
    await consultant.getByLabel('cloud-config (YAML)').fill('users:\n  - name: mallory\n');
    await consultant.getByRole('button', { name: 'Submit request' }).click();
    const nameError = consultant.locator('#vm-name-error');
    await nameError.waitFor();
    assert.match((await nameError.textContent()) ?? '', /lower-case letters, digits and inner hyphens only/);
    assert.match((await consultant.locator('#vm-cloud-config-error').textContent()) ?? '', /generated logins/);
    const nameInput = consultant.getByLabel('VM name', { exact: true });
    assert.equal(await nameInput.getAttribute('aria-invalid'), 'true');
    assert.match((await nameInput.getAttribute('aria-describedby')) ?? '', /vm-name-error/);
    await shot(consultant, 'form-desktop');

    await nameInput.fill('kali');
    await consultant.getByLabel('cloud-config (YAML)').fill('timezone: Europe/Berlin\n');
    await consultant.getByLabel('Extra packages').fill('htop\nnginx');
    await consultant.getByLabel('File to write').fill('/etc/motd');
    await consultant.getByLabel('File content').fill('Willkommen');
    await consultant.getByLabel('Disk (GiB, optional)').fill('10');
    await consultant.getByRole('button', { name: 'Submit request' }).click();
    await consultant.waitForURL(/#\/requests\/VM-[0-9A-Z]{5}$/);
    const serial = /VM-[0-9A-Z]{5}$/.exec(consultant.url())![0];
    const filed = (await api(`/api/device_requests/${serial}`, 'consultant')).body;
    assert.equal(filed.request.image, 'debian-12-cloudinit');
    assert.equal(filed.request.diskGiB, 10);
    assert.deepEqual(filed.request.cloudInit, { packages: ['htop', 'nginx'], write_files: [{ path: '/etc/motd', content: 'Willkommen' }], cloud_config: { timezone: 'Europe/Berlin' } });
    const status = consultant.locator('.status-big .badge');
    await waitFor('the request page', async () => ((await status.textContent()) === 'Pending' ? true : undefined));
    assert.equal(await consultant.getByRole('button', { name: 'Approve' }).count(), 0, 'a requester is not offered approval');

    // ── An admin of the same org, in a second browser, finds it in the list and approves it after confirming.
    const admin = await open(desktop);
    await signIn(admin, 'admin');
    const row = admin.getByRole('link', { name: serial });
    await waitFor('the request in the admin list', async () => {
      if (await row.count()) return true;
      await admin.getByRole('button', { name: 'Apply' }).click(); // visibility is eventually consistent
      return undefined;
    });
    await row.click();
    await admin.getByRole('button', { name: 'Approve' }).click();
    const dialog = admin.getByRole('dialog');
    await dialog.getByRole('heading', { name: 'Approve this request?' }).waitFor();
    await dialog.getByRole('button', { name: 'Approve' }).click();
    // The answer says what the approval did: the build it queued.
    await admin.getByText(`Approve: done. ${serial} is Approved; build 1 queued.`).waitFor();

    // ── The consultant's page follows the build live to 100 % and shows where the VM is.
    await consultant.locator('[role="progressbar"][aria-valuenow="100"]').waitFor({ timeout: 120_000 });
    const ipCell = consultant.locator('dt:text-is("IP address") + dd');
    const ip = await waitFor('the IP on the page', async () => {
      const text = (await ipCell.textContent()) ?? '';
      return /^\d+\.\d+\.\d+\.\d+$/.test(text) ? text : undefined;
    });
    const record = (await api(`/api/device_requests/${serial}`, 'consultant')).body;
    assert.equal(record.status, 'Fulfilled');
    assert.equal(ip, record.device.ip, 'the page shows the IP the API has');
    assert.equal(await consultant.locator('dt:text-is("VPN hostname") + dd').textContent(), record.device.vpnHostname);
    assert.equal(await consultant.locator('dt:text-is("VMID") + dd').textContent(), String(record.device.vmid));
    // Each build attempt, with the VM it made, where, and its build time.
    await consultant.locator('.attempts summary', { hasText: new RegExp(`^Attempt 1: completed · VM ${record.device.vmid} on ${record.device.node} · started .* · took \\d+ s$`) }).waitFor();
    assert.equal(await status.textContent(), 'Fulfilled');
    assert.ok((await consultant.locator('.log li').count()) >= 5, 'the build log was streamed');
    await shot(consultant, 'request-desktop');

    await admin.goto(`${stack.apiUrl}/#/requests`);
    await admin.getByRole('link', { name: serial }).waitFor();
    await admin.locator('[role="progressbar"][aria-valuenow="100"]').first().waitFor();
    await shot(admin, 'list-desktop');

    // ── On a phone: the same pages, laid out for it.
    const mobile = await open(phone);
    await signIn(mobile, 'consultant');
    await mobile.getByRole('link', { name: serial }).waitFor();
    await shot(mobile, 'list-phone');
    await mobile.goto(`${stack.apiUrl}/#/requests/${serial}`);
    await mobile.locator('[role="progressbar"][aria-valuenow="100"]').waitFor();
    await shot(mobile, 'request-phone');
    await mobile.goto(`${stack.apiUrl}/#/requests/new`);
    await mobile.getByRole('heading', { level: 1, name: 'New request' }).waitFor();
    await shot(mobile, 'form-phone');

    // ── The logins to a consultant of the request: the same consultant may fetch them again for a few minutes (an
    // answer lost in transit), then they are shredded for everyone (test/credentialShredding.test.ts).
    await consultant.getByRole('button', { name: 'Reveal logins' }).click();
    await consultant.getByRole('dialog').getByRole('button', { name: 'Reveal' }).click();
    const password = await waitFor('the revealed password', async () => {
      const cell = consultant.locator('dt:text-is("Password") + dd');
      return (await cell.count()) ? ((await cell.textContent()) ?? undefined) : undefined;
    });
    assert.ok(password.length >= 12, 'a real password is shown');
    assert.equal(await consultant.locator('dt:text-is("Username") + dd').textContent(), 'arrow');
    const second = await api(`/api/device_requests/${serial}/credentials`, 'consultant');
    assert.equal(second.status, 200, 'the same consultant may fetch them again within the window');
    assert.equal((second.body as { password: string }).password, password, 'the same logins again');
    await consultant.reload();
    await consultant.getByText('Collected by alice@consultancy.example', { exact: false }).waitFor();
    assert.equal(await consultant.getByText(password).count(), 0, 'a reload does not show them again');

    // ── The consultant completes it, after confirming, and sees it through to the end.
    await consultant.getByRole('button', { name: 'Complete' }).click();
    await consultant.getByRole('dialog').getByRole('button', { name: 'Complete' }).click();
    await waitFor('the request to be completed on the page', async () => ((await status.textContent()) === 'Completed' ? true : undefined), 90_000, 500);

    // ── A requester of another org: not in its list, and its page is "not found".
    const outsider = await open(desktop);
    await signIn(outsider, 'otherOrg');
    await outsider.getByText('No requests match.').waitFor();
    await outsider.getByRole('banner').getByText('Globex: 0/3 VMs · 0/12 cores').waitFor();
    assert.equal(await outsider.getByRole('link', { name: serial }).count(), 0);
    await outsider.goto(`${stack.apiUrl}/#/requests/${serial}`);
    await outsider.getByRole('heading', { level: 1, name: 'Not found' }).waitFor();
    assert.equal(await outsider.getByText('kali').count(), 0, 'nothing of the request leaks onto the page');

    for (const page of [consultant, admin, mobile, outsider]) {
      for (const key of Object.values(keys)) assert.ok(!page.url().includes(key.key), 'no key in any address');
    }
    assert.deepEqual(browser!.problems, []);
  });

  test("lists tell a class's VMs apart by name, dates follow the browser's locale, and the form's limits are the API's", async () => {
    const now = Date.now();
    const res = await fetch(`${stack.apiUrl}/api/classes`, {
      method: 'POST',
      headers: { authorization: `Bearer ${keys.consultant.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        name: 'lab',
        count: 2,
        client: 'Acme Corp',
        requester: 'alice@consultancy.example',
        consultants: ['alice@consultancy.example'],
        period: { start: new Date(now + 30 * 86_400_000).toISOString(), end: new Date(now + 31 * 86_400_000).toISOString() },
      }),
    });
    assert.equal(res.status, 201);
    const submitted = (await res.json()) as { class: string; requests: Array<{ serial: string; name: string }> };
    const names = await waitFor('the class with its names', async () => {
      const c = await api(`/api/classes/${submitted.class}`, 'consultant');
      return c.status === 200 && c.body.requests.length === 2 ? c.body.requests.map((r: { name?: string }) => r.name) : undefined;
    });
    assert.deepEqual(names, ['lab-01', 'lab-02'], "a class's items carry their names");

    const rowOf = (page: Page, serial: string) => page.locator('tr', { has: page.getByRole('link', { name: serial }) });
    const [first] = submitted.requests;
    // A German reader: day first, 24-hour clock.
    const german = await open({ ...desktop, locale: 'de-DE' });
    await signIn(german, 'consultant');
    await rowOf(german, first!.serial).waitFor();
    assert.equal(await rowOf(german, first!.serial).locator('td[data-label="Name"]').textContent(), 'lab-01');
    const submittedDe =
      (await rowOf(german, first!.serial)
        .getByText(/^Submitted /)
        .textContent()) ?? '';
    assert.match(submittedDe, /^Submitted \d{2}\.\d{2}\.\d{4}, \d{2}:\d{2}$/, submittedDe);
    // An American reader: month first, 12-hour clock; the same instant.
    const american = await open({ ...desktop, locale: 'en-US' });
    await signIn(american, 'consultant');
    await rowOf(american, first!.serial).waitFor();
    assert.match(
      (await rowOf(american, first!.serial)
        .getByText(/^Submitted /)
        .textContent()) ?? '',
      /\d{1,2}:\d{2}\s?(AM|PM)$/,
    );

    // The form's limits are the API's (512 MiB, 1 core), whatever the template's own size.
    await german.goto(`${stack.apiUrl}/#/requests/new`);
    await german.getByRole('heading', { level: 1, name: 'New request' }).waitFor();
    const memory = german.getByLabel('Memory (MiB)');
    await waitFor('the image in the form', async () => ((await german.getByLabel('Image').inputValue()) === 'debian-12-cloudinit' ? true : undefined));
    assert.equal(await memory.getAttribute('min'), '512');
    assert.equal(await german.getByLabel('CPU cores').getAttribute('min'), '1');
    assert.match((await german.locator('#vm-memory-hint').textContent()) ?? '', /^512 to 262144 MiB/);
    assert.equal(await german.getByLabel('VM name', { exact: true }).getAttribute('maxlength'), '40');
    await german.getByLabel('VM name', { exact: true }).fill('small');
    await memory.fill('768');
    await german.getByLabel('CPU cores').fill('1');
    await german.getByRole('button', { name: 'Submit request' }).click();
    await german.waitForURL(/#\/requests\/VM-[0-9A-Z]{5}$/);
    const small = (await api(`/api/device_requests/${/VM-[0-9A-Z]{5}$/.exec(german.url())![0]}`, 'consultant')).body;
    assert.equal(small.request.memoryMiB, 768, 'what the form allows, the API takes');
    assert.deepEqual(browser!.problems, []);
  });
});
