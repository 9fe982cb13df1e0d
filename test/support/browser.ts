import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page } from 'playwright-core';

/**
 * The system's Chromium (Debian's `chromium`, installed by .ci/run), never a browser downloaded by Playwright: the
 * machines have no internet. CHROMIUM_PATH points elsewhere when needed.
 */
export const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Why browser tests cannot run here, or undefined when they can. In CI a missing browser is a failure, not a skip. */
export function browserMissing(): string | undefined {
  if (existsSync(chromiumPath)) return undefined;
  const why = `no Chromium at ${chromiumPath} (apt-get install -y chromium, or set CHROMIUM_PATH)`;
  if (process.env.CI) throw new Error(`browser tests must run in CI: ${why}`);
  return why;
}

export function launchChromium(): Promise<Browser> {
  // --no-sandbox: CI runs as root in a container, where Chromium's sandbox cannot start.
  return chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox', '--disable-dev-shm-usage'], timeout: 60_000 });
}

/** People at their own browsers, as the console's browser tests drive them. */
export interface BrowserPages {
  /** What a page said that it should not have: script errors and refused content (a CSP too strict or a bug). */
  readonly problems: string[];
  /** A page in a context of its own (another person, another browser): British English unless `options` say otherwise. */
  open(options?: BrowserContextOptions): Promise<Page>;
  /** A full-page screenshot to `<artifacts>/<name>.png`. */
  shot(page: Page, name: string): Promise<Buffer>;
  /** Closes every context, then the browser. */
  close(): Promise<void>;
}

/** The system's Chromium, its screenshots going to `artifacts`; `contextDefaults` apply to every page the test opens. */
export async function startBrowserPages(artifacts: string, contextDefaults: BrowserContextOptions = {}): Promise<BrowserPages> {
  mkdirSync(artifacts, { recursive: true });
  const browser = await launchChromium();
  const contexts: BrowserContext[] = [];
  const problems: string[] = [];
  return {
    problems,
    async open(options = {}) {
      const context = await browser.newContext({ locale: 'en-GB', ...contextDefaults, ...options });
      contexts.push(context);
      const page = await context.newPage();
      page.setDefaultTimeout(30_000);
      page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
      page.on('console', (msg) => {
        // A 4xx answer the page handles is logged by Chromium as "Failed to load resource": expected, not a problem.
        if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) problems.push(`console: ${msg.text()}`);
      });
      return page;
    },
    shot: (page, name) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true, animations: 'disabled' }),
    async close() {
      for (const c of contexts.splice(0)) await c.close().catch(() => {});
      await browser.close();
    },
  };
}
