import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { chromiumPathForTests, openTestBrowser, type TestBrowser } from '../fakes/chromium.js';
import { startTestSmtp, type TestSmtp } from '../fakes/smtp-server.js';

/**
 * A newcomer in Chromium, in English and in Japanese: presses Add on an empty form (plain "Required" messages,
 * no schema text), picks Gmail and sees its values appear at once, chooses basic authentication (the password
 * appears, the integration picker does not), tests the unsaved form against a real SMTP server with implicit
 * TLS (the environment override points Gmail's host there), sends a test email that arrives, and saves.
 * Then the list and the page at 390 px width.
 */

const PASSWORD = 'gmail app password 1234';
const MAILBOX = 'newcomer@gmail.example';
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const RAW = /expected string|received undefined|Invalid input|expected number|invalid_type/;

const TEXTS = {
  en: {
    add: 'Configure new SMTP mail server',
    addButton: 'Add',
    required: 'Required.',
    name: 'Name',
    host: 'Host name',
    password: 'Password',
    test: 'Test connection',
    testEmail: 'Send test email',
    succeeded: 'Succeeded: connected, TLS, authenticated (basic)',
    emailSent: 'Test email accepted by the server for',
    added: 'added',
    state: 'Active',
  },
  ja: {
    add: '新しい SMTP メールサーバーの設定',
    addButton: '追加',
    required: '必須項目です。',
    name: '名前',
    host: 'ホスト名',
    password: 'パスワード',
    test: 'テスト接続',
    testEmail: 'テストメールを送信',
    succeeded: '成功しました: 接続, TLS, 認証 (basic)',
    emailSent: 'テストメールは',
    added: '追加しました',
    state: '有効',
  },
} as const;

describe.skipIf(!chromiumPathForTests())('a newcomer adds a Gmail server in a real browser', () => {
  let app: TestApp;
  let smtp: TestSmtp;
  let browser: TestBrowser | undefined;
  let page: Page;
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    smtp = await startTestSmtp({ secure: true, auth: { user: MAILBOX, pass: PASSWORD } });
    app = await startTestApp({
      env: { MAILGATE_SMTP_HOST: '127.0.0.1', MAILGATE_SMTP_PORT: String(smtp.port) },
      tlsCa: [smtp.ca],
    });
    const user = await app.createUser('sysadmin');
    browser = await openTestBrowser(consoleErrors);
    ({ page } = browser);
    await page.goto(`${app.url}/login`);
    await page.getByLabel('Email').fill(user.email);
    await page.getByLabel('Password').fill(user.password);
    await Promise.all([page.waitForURL(/\/admin\//), page.getByRole('button', { name: 'Log in' }).click()]);
  });

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await smtp?.close();
  });

  async function expectNoRawText() {
    expect(await page.locator('main').textContent()).not.toMatch(RAW);
  }

  for (const lang of ['en', 'ja'] as const) {
    const t = TEXTS[lang];
    it(`${lang}: empty Add, Gmail preset, test unsaved values, send a test email, save`, async () => {
      await page.setExtraHTTPHeaders({ 'accept-language': lang === 'ja' ? 'ja,en;q=0.5' : 'en' });
      await page.goto(`${app.url}/admin/smtp-servers`);
      await page.getByRole('link', { name: t.add }).click();

      // An empty Add: plain messages, tied to the fields, in one round.
      await Promise.all([
        page.waitForLoadState('load'),
        page.getByRole('button', { name: t.addButton, exact: true }).click(),
      ]);
      await page.locator('#form-errors').waitFor();
      expect(await page.locator('#name-error').textContent()).toBe(t.required);
      expect(await page.locator('#host-error').textContent()).toBe(t.required);
      expect(await page.getByLabel(t.name, { exact: true }).getAttribute('aria-invalid')).toBe('true');
      await expectNoRawText();

      await page.getByLabel(t.name, { exact: true }).fill(`Gmail (${lang})`);
      await page.locator('#fromAddress').fill(MAILBOX);
      // Gmail's values appear at once, before any submit.
      await page.locator('#serviceProvider').selectOption('gmail');
      expect(await page.getByLabel(t.host, { exact: true }).inputValue()).toBe('smtp.gmail.com');
      expect(await page.locator('#port').inputValue()).toBe('465');
      expect(await page.locator('#protocol').inputValue()).toBe('smtps');
      expect(await page.locator('#tls').isChecked()).toBe(false);

      // Only the fields the method needs.
      expect(await page.locator('#password').isVisible()).toBe(false);
      await page.locator('#authMethod').selectOption('basic');
      expect(await page.getByLabel(t.password, { exact: true }).isVisible()).toBe(true);
      expect(await page.locator('#oauthIntegrationId').isVisible()).toBe(false);
      await page.locator('#username').fill(MAILBOX);
      await page.getByLabel(t.password, { exact: true }).fill(PASSWORD);

      // Test connection on the unsaved form: the result appears next to the buttons, the page stays.
      const formUrl = page.url();
      await page.getByRole('button', { name: t.test }).click();
      await page.locator('#test-summary').waitFor();
      expect(await page.locator('#test-summary').textContent()).toContain(t.succeeded);
      expect(page.url()).toBe(formUrl);
      const button = (await page.locator('#test-button').boundingBox())!;
      const result = (await page.locator('#test-summary').boundingBox())!;
      expect(result.y - button.y).toBeLessThan(300);
      expect(await page.locator('#transcript').textContent()).not.toContain(PASSWORD);
      expect(await app.services.mail.servers.list()).toHaveLength(lang === 'en' ? 0 : 1);

      // Send test email: it arrives at the SMTP server.
      const before = smtp.messages.length;
      await page.locator('#testRecipient').fill(`inbox-${lang}@example.net`);
      await page.getByRole('button', { name: t.testEmail }).click();
      await page.locator('#test-result [data-kind="email"]').waitFor();
      expect(await page.locator('#test-summary').textContent()).toContain(t.emailSent);
      await smtp.waitFor(before + 1);
      expect(smtp.messages.at(-1)!.to).toEqual([`inbox-${lang}@example.net`]);
      expect(smtp.messages.at(-1)!.authUser).toBe(MAILBOX);
      expect(smtp.messages.at(-1)!.secure).toBe(true);

      // Save: the typed values and the password (never shown again).
      await Promise.all([
        page.waitForURL(/\/admin\/smtp-servers\/srv_/),
        page.getByRole('button', { name: t.addButton, exact: true }).click(),
      ]);
      expect(await page.getByRole('status').first().textContent()).toContain(t.added);
      expect(await page.locator('#host').inputValue()).toBe('smtp.gmail.com');
      expect(await page.locator('#password').inputValue()).toBe('');
      expect(await page.content()).not.toContain(PASSWORD);
      await expectNoRawText();
      await page.goto(`${app.url}/admin/smtp-servers`);
      expect(await page.locator(`table.smtp-servers`).textContent()).toContain(t.state);
      expect(consoleErrors).toEqual([]);
    });
  }

  /** axe-core on the page's own content (WCAG 2 A and AA rules); evaluate is not subject to the page's CSP. */
  async function axeViolations(): Promise<string[]> {
    return page.evaluate<string[]>(`(async () => {
      ${AXE}
      const r = await axe.run({ include: [['main']] }, { runOnly: ['wcag2a', 'wcag2aa'] });
      return r.violations.map((v) => v.id + ': ' + v.nodes.map((n) => n.target.join(' ')).join(', '));
    })()`);
  }

  it('the form with errors and a test result, the list and a server page pass axe in both languages', async () => {
    const servers = await app.services.mail.servers.list();
    for (const lang of ['en', 'ja']) {
      await page.setExtraHTTPHeaders({ 'accept-language': lang });
      for (const path of ['/admin/smtp-servers', `/admin/smtp-servers/${servers[0]!.id}`, '/admin/smtp-servers/new']) {
        await page.goto(`${app.url}${path}`);
        expect(await axeViolations(), `${lang} ${path}`).toEqual([]);
      }
      await page.getByRole('button', { name: TEXTS[lang as 'en' | 'ja'].addButton, exact: true }).click();
      await page.locator('#form-errors').waitFor();
      await page.getByRole('button', { name: TEXTS[lang as 'en' | 'ja'].test }).click();
      await page.locator('#test-result .errors, #test-summary').first().waitFor();
      expect(await axeViolations(), `${lang} form with errors`).toEqual([]);
    }
  });

  it('the list and a server page are usable at 390 px: no content wider than the screen', async () => {
    await page.setExtraHTTPHeaders({ 'accept-language': 'en' });
    await page.setViewportSize({ width: 390, height: 844 });
    const servers = await app.services.mail.servers.list();
    for (const path of ['/admin/smtp-servers', `/admin/smtp-servers/${servers[0]!.id}`, '/admin/smtp-servers/new']) {
      await page.goto(`${app.url}${path}`);
      // The page's own content (the site header is laid out by the layout, not by these pages).
      const wide = await page.evaluate<string[]>(`
        [...document.querySelectorAll('main, main *')]
          // Column headings are visually hidden at this width (each cell carries its label).
          .filter((e) => !e.closest('thead'))
          .filter((e) => e.getBoundingClientRect().right > 390 || e.scrollWidth > e.clientWidth + 1)
          .filter((e) => getComputedStyle(e).overflowX === 'visible' || e.tagName === 'MAIN')
          .map((e) => e.tagName.toLowerCase() + '#' + e.id + '.' + e.className)
      `);
      expect(wide, path).toEqual([]);
    }
    await page.goto(`${app.url}/admin/smtp-servers`);
    expect(await page.getByRole('link', { name: /^Edit/ }).first().isVisible()).toBe(true);
    expect(await page.locator('td.state').first().isVisible()).toBe(true);
  });
});
