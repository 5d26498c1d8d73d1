import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { messageInput } from '../../src/mail/compose.js';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { chromiumPathForTests, openTestBrowser, type TestBrowser } from '../fakes/chromium.js';
import { eventually, TEST_ACTOR } from '../fakes/mail-services.js';
import { startTestSmtp, type TestSmtp } from '../fakes/smtp-server.js';
import { ADMIN_PAGES, clickAndLoad, logInWithForm, pathOf, screenshot } from './admin-pages.js';

/**
 * axe-core on every admin page (ADMIN_PAGES) in English and Japanese, at desktop width and at 390 px: any
 * violation of impact serious or critical fails. Also: the language switch is remembered, and at 390 px no page
 * is wider than the screen (tables scroll inside their wrapper).
 */

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[] }[];
}

const axeSource = await readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

async function axeViolations(page: Page): Promise<string[]> {
  // Evaluated through the DevTools protocol: the page's CSP (no inline scripts) does not apply, nothing is added to the page.
  await page.evaluate(axeSource);
  // No DOM types in this project: browser-side code is passed as a string.
  const violations = await page.evaluate<AxeViolation[]>(
    "axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations)",
  );
  return violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

describe.skipIf(!chromiumPathForTests())('accessibility of every admin page', () => {
  let app: TestApp;
  let smtp: TestSmtp;
  let page: Page;
  let browser: TestBrowser | undefined;
  const seed: Record<string, string> = {};
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    smtp = await startTestSmtp({
      starttls: false,
      onRcptTo: (a) => (a.startsWith('nobody') ? { code: 550, message: '5.1.1 mailbox unavailable' } : undefined),
    });
    app = await startTestApp({ workers: true });
    seed.serverId = (
      await app.services.mail.servers.create(
        { name: 'Relay one', fromAddress: 'notify@example.com', host: '127.0.0.1', port: smtp.port, tls: false },
        { actor: TEST_ACTOR },
      )
    ).id;
    for (const to of ['ops@example.net', 'nobody@example.net']) {
      const { id } = await app.services.mail.queue.enqueue({
        ...messageInput.parse({ to, subject: `Weekly report for ${to}`, text: 'hello' }),
        serverId: seed.serverId,
      });
      const m = await eventually(
        () => app.services.mail.queue.get(id),
        (v) => v.status === 'sent' || v.status === 'failed',
      );
      if (m.status === 'failed') seed.failedMessageId = id;
    }
    await app.services.audit.record({
      actor: TEST_ACTOR,
      action: 'smtp_server.test',
      target: `smtp_server:${seed.serverId}`,
      outcome: 'failure',
      detail: { code: 'auth_failed', durationMs: 42 },
    });
    const user = await app.createUser('sysadmin');
    browser = await openTestBrowser(consoleErrors);
    ({ page } = browser);
    await logInWithForm(page, app, user);
  });

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await smtp?.close();
  });

  it('the check finds what it should: a field without a label fails it', async () => {
    await page.goto(`${app.url}/admin/audit`);
    await page.evaluate(`document.querySelector('label[for="filter-actor"]').remove()`);
    expect((await axeViolations(page)).join('\n')).toContain('label (critical)');
  });

  for (const lang of ['en', 'ja'] as const) {
    it(`has no serious or critical axe violation on any page (${lang})`, async () => {
      await page.setViewportSize({ width: 1280, height: 800 });
      await page.goto(`${app.url}/language/${lang}?next=/admin/smtp-servers`);
      const problems: string[] = [];
      for (const p of ADMIN_PAGES) {
        const path = pathOf(p, seed);
        await page.goto(`${app.url}${path}`);
        expect(await page.locator('html').getAttribute('lang'), path).toBe(lang);
        for (const v of await axeViolations(page)) problems.push(`${path}: ${v}`);
      }
      expect(problems).toEqual([]);
    });
  }

  it('fits every page into 390 px (tables scroll in their wrapper) without axe violations', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${app.url}/language/en?next=/admin/mail-queue`);
    const problems: string[] = [];
    for (const p of ADMIN_PAGES) {
      const path = pathOf(p, seed);
      await page.goto(`${app.url}${path}`);
      const width = await page.evaluate<number>('document.documentElement.scrollWidth');
      if (width > 390) {
        const wide = await page.evaluate<string>(
          `[...document.querySelectorAll('body *')].filter((el) => el.getBoundingClientRect().right > 392).slice(0, 4)
            .map((el) => el.tagName + '.' + el.className + '#' + el.id).join('; ')`,
        );
        problems.push(`${path}: the page is ${width} px wide (${wide})`);
      }
      for (const v of await axeViolations(page)) problems.push(`${path}: ${v}`);
    }
    await page.goto(`${app.url}/admin/mail-queue`);
    await screenshot(page, 'mail-queue-390', { fullPage: false });
    expect(problems).toEqual([]);
  });

  it('remembers the language chosen in the header over Accept-Language', async () => {
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.context().setExtraHTTPHeaders({ 'accept-language': 'en-US,en;q=0.9' });
    await page.goto(`${app.url}/admin/audit`);
    await clickAndLoad(page, page.locator('nav.languages a[hreflang="ja"]'));
    expect(new URL(page.url()).pathname).toBe('/admin/audit');
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('監査ログ');
    await page.goto(`${app.url}/admin/mail-queue`);
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('メールキュー');
    expect(await page.locator('nav.languages a[aria-current="true"]').getAttribute('hreflang')).toBe('ja');
    const cookie = (await page.context().cookies(app.url)).find((c) => c.name === 'mailgate_lang');
    expect(cookie?.value).toBe('ja');
    expect(cookie!.expires * 1000).toBeGreaterThan(Date.now() + 300 * 86_400_000);
    await clickAndLoad(page, page.locator('nav.languages a[hreflang="en"]'));
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Mail queue');
    await page.context().setExtraHTTPHeaders({});
  });

  it('shows a visible focus ring and marks the current page in the navigation', async () => {
    await page.goto(`${app.url}/admin/audit`);
    await screenshot(page, 'audit');
    expect(await page.locator('header nav a[aria-current="page"]').textContent()).toBe('Audit log');
    await page.keyboard.press('Tab');
    expect(await page.evaluate<boolean>("document.activeElement === document.querySelector('.skip-link')")).toBe(true);
    const outline = await page.evaluate<string>('getComputedStyle(document.activeElement).outlineStyle');
    expect(outline).not.toBe('none');
    await page.goto(`${app.url}/admin/smtp-servers`);
    await screenshot(page, 'smtp-servers');
    await page.goto(`${app.url}/login`);
    expect(consoleErrors).toEqual([]);
  });
});
