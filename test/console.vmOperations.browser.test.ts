import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { generateApiKey } from '../src/api/auth/apiKeys';
import type { EmbeddedStack } from '../src/embedded/stack';
import { browserMissing, launchChromium } from './support/browser';
import { validRequestBody } from './support/requests';
import { startTestStack, type TestStack } from './support/testStack';
import { waitFor } from './support/waitFor';

/**
 * The day-2 operations on the console's request page, in a real Chromium against the embedded default: a requester
 * shuts the VM down and starts it, takes a snapshot, and resizes it, allowing the reboot the resize needs once the
 * refusal has said so; migration is offered to operators only. A screenshot goes to test-artifacts/console/.
 */
const noBrowser = browserMissing();
const artifacts = join(__dirname, '..', 'test-artifacts', 'console');

describe('day-2 operations in the web console', { skip: noBrowser }, () => {
  let stack: EmbeddedStack;
  let running: TestStack | undefined;
  let browser: Browser;
  const pageProblems: string[] = [];
  const keys = {
    requester: { id: 'rita', role: 'requester', org: 'Acme Corp', email: 'rita@acme.example', key: generateApiKey() },
    admin: { id: 'ada', role: 'admin', org: 'Acme Corp', email: 'ada@acme.example', key: generateApiKey() },
    operator: { id: 'ops', role: 'operator', key: generateApiKey() },
  };
  const call = async (as: keyof typeof keys, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${stack.apiUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${keys[as].key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, body: (await res.json()) as any };
  };

  before(async () => {
    mkdirSync(artifacts, { recursive: true });
    running = await startTestStack('console-ops', Object.values(keys));
    stack = running.stack;
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await running?.stop();
  });

  const open = async (as: keyof typeof keys, serial: string): Promise<Page> => {
    const page = await (await browser.newContext({ locale: 'en-GB', viewport: { width: 1280, height: 900 } })).newPage();
    page.setDefaultTimeout(30_000);
    page.on('pageerror', (err) => pageProblems.push(`page error: ${err.message}`));
    await page.goto(`${stack.apiUrl}/`);
    await page.getByLabel('API key').fill(keys[as].key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Requests' }).waitFor();
    await page.goto(`${stack.apiUrl}/#/requests/${serial}`);
    await page.getByRole('heading', { name: 'Operate the VM' }).waitFor({ timeout: 120_000 });
    return page;
  };

  test('power, snapshot and a resize whose reboot the user allows; migration for operators only', async () => {
    const now = Date.now();
    const created = await call(
      'requester',
      'POST',
      '/api/device_requests',
      validRequestBody({ period: { start: new Date(now - 60_000).toISOString(), end: new Date(now + 7 * 86_400_000).toISOString() }, cores: 2, memory_mib: 2048 }),
    );
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const serial: string = created.body.serial;
    assert.equal((await call('admin', 'POST', `/api/device_requests/${serial}/approve`, {})).status, 200);
    await waitFor('fulfilled', async () => ((await call('requester', 'GET', `/api/device_requests/${serial}`)).body.status === 'Fulfilled' ? true : undefined), 120_000, 500);

    const page = await open('requester', serial);
    const operations = page.getByRole('region', { name: 'Operate the VM' });
    assert.equal(await operations.getByRole('button', { name: 'Migrate' }).count(), 0, 'a requester is not offered migration');

    await operations.getByRole('button', { name: 'Shut down' }).click();
    await page.getByRole('dialog').getByRole('textbox', { name: 'Note (optional)' }).fill('weekend');
    await page.getByRole('dialog').getByRole('button', { name: 'Shut down' }).click();
    await page.getByText('power shutdown: the guest shut down.').waitFor();
    await operations.getByRole('button', { name: 'Start' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Start' }).click();
    await page.getByText('power start: started.').waitFor();

    await operations.getByRole('button', { name: 'Take snapshot' }).click();
    await page.getByRole('dialog').getByLabel('Snapshot name').fill('clean');
    await page.getByRole('dialog').getByRole('button', { name: 'Take snapshot' }).click();
    await page.getByText('snapshot create clean: taken.').waitFor();
    await operations.getByRole('list', { name: 'Snapshots' }).getByText('clean').waitFor();

    await operations.getByRole('button', { name: 'Resize' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Cores').fill('4');
    await dialog.getByRole('button', { name: 'Resize' }).click();
    await dialog.getByText(/a reboot is needed to apply cores 2 → 4/).waitFor();
    await dialog.getByLabel('Reboot the VM if the change needs it').check();
    await dialog.getByRole('button', { name: 'Resize' }).click();
    await page.getByText('reconfigure cores 4 (reboot confirmed): after a reboot: cores 2 → 4 (rebooted).').waitFor();
    await page.getByText('weekend').first().waitFor(); // the why, on the timeline
    await page.screenshot({ path: join(artifacts, 'request-operations.png'), fullPage: true, animations: 'disabled' });

    const record = (await call('requester', 'GET', `/api/device_requests/${serial}`)).body;
    assert.deepEqual(
      record.operations.map((o: { what: string; state: string }) => `${o.what}: ${o.state}`),
      ['power shutdown: succeeded', 'power start: succeeded', 'snapshot create clean: succeeded', 'reconfigure cores 4: refused', 'reconfigure cores 4 (reboot confirmed): succeeded'],
    );

    const operator = await open('operator', serial);
    await operator.getByRole('region', { name: 'Operate the VM' }).getByRole('button', { name: 'Migrate' }).click();
    const target = ['pve1', 'pve2', 'pve3'].find((n) => n !== record.device.node)!;
    await operator.getByRole('dialog').getByLabel('Target node').fill(target);
    await operator.getByRole('dialog').getByRole('button', { name: 'Migrate' }).click();
    // The notice (and the timeline) say what the migration did.
    await operator
      .getByRole('status')
      .getByText(new RegExp(`^migrate to ${target}: moved online from ${record.device.node} to ${target}; cloud-init snippet moved to ${target}\\.$`))
      .waitFor();
    assert.equal((await call('operator', 'GET', `/api/device_requests/${serial}`)).body.device.node, target);
    assert.deepEqual(pageProblems, []);
  });
});
