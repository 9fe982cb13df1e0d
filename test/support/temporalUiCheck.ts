import assert from 'node:assert/strict';
import type { Browser } from 'playwright-core';

/**
 * An operator opening a workflow in Temporal UI through pveflow's gateway, in a real browser: signed out, the page
 * sends them to the sign-in; with their operator key, they land on the workflow and read its input decrypted — the
 * codec answered, no "Codec Server could not connect". Returns the page's text for further checks.
 */
export async function readWorkflowInTemporalUi(browser: Browser, opts: { uiUrl: string; operatorKey: string; workflowId: string; namespace?: string; expectText: string }): Promise<string> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  try {
    const page = await context.newPage();
    page.setDefaultTimeout(30_000);
    const workflowPath = `/namespaces/${opts.namespace ?? 'default'}/workflows/${encodeURIComponent(opts.workflowId)}`;
    await page.goto(`${opts.uiUrl}${workflowPath}`);
    assert.match(new URL(page.url()).pathname, /^\/pveflow\/sign-in$/, 'a browser without a session is sent to the sign-in');
    await page.fill('#key', opts.operatorKey);
    await Promise.all([page.waitForURL((u) => u.pathname === workflowPath), page.click('button[type=submit]')]);
    // The input is shown decoded once the UI's codec call came back.
    await page.getByText(opts.expectText, { exact: false }).first().waitFor({ state: 'visible', timeout: 30_000 });
    const text = await page.innerText('body');
    assert.doesNotMatch(text, /Codec Server could not connect/i, 'the UI reached the codec');
    assert.doesNotMatch(text, /binary\/encrypted/, 'no payload is shown still encrypted');
    return text;
  } finally {
    await context.close();
  }
}
