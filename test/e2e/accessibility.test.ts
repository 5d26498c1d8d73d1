import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { messageInput } from '../../src/mail/compose.js';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { chromiumPathForTests, openTestBrowser, type TestBrowser } from '../fakes/chromium.js';
import { eventually, TEST_ACTOR } from '../fakes/mail-services.js';
import { makeServiceAccountKey } from '../fakes/app-only.js';
import { startFakeProvider, type FakeProvider } from '../fakes/oidc-provider.js';
import { createOAuthServer, providerEnv } from '../fakes/oauth-setup.js';
import { startTestSmtp, type TestSmtp } from '../fakes/smtp-server.js';
import { ADMIN_PAGES, clickAndLoad, logInWithForm, openAdminPage, screenshot } from './admin-pages.js';

/**
 * axe-core on every admin page (ADMIN_PAGES) in English and Japanese, at desktop width and at 390 px: any
 * violation of impact serious or critical fails. Also: the language switch is remembered, and at 390 px no page
 * (nor its header) is wider than the screen in either language (tables scroll inside their wrapper).
 */

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[] }[];
}

// Every page in one test (one app, one browser): about 2 s a page with axe on a busy machine.
const PAGES_TIMEOUT_MS = 240_000;

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

/** An OAuth server with a reconnect link, an integration of each grant type and a notification channel. */
async function seedOAuthAndNotifications(
  app: TestApp,
  microsoft: FakeProvider,
  google: FakeProvider,
  smtpPort: number,
  seed: Record<string, string>,
): Promise<void> {
  const oauth = await createOAuthServer(app.services, microsoft, smtpPort);
  seed.oauthServerId = oauth.serverId;
  seed.authCodeIntegrationId = oauth.integrationId;
  seed.reconnectToken = (await app.services.reconnectLinks.create(oauth.serverId, TEST_ACTOR)).token;
  const integrations = app.services.oauthIntegrations;
  seed.clientCredentialsIntegrationId = (
    await integrations.create(
      {
        name: 'Exchange app-only',
        provider: 'microsoft',
        grantType: 'client_credentials',
        clientId: 'app-only-client',
        tenant: microsoft.tenant,
        clientSecret: 'app-only-secret-value',
      },
      TEST_ACTOR,
    )
  ).id;
  seed.serviceAccountIntegrationId = (
    await integrations.create(
      {
        name: 'Workspace',
        provider: 'google',
        grantType: 'service_account',
        serviceAccountKey: makeServiceAccountKey(google).json,
      },
      TEST_ACTOR,
    )
  ).id;
  seed.channelId = (
    await app.services.notify.channels.create({ name: 'Ops mail', type: 'email', to: 'ops@example.net' }, TEST_ACTOR)
  ).id;
}

describe.skipIf(!chromiumPathForTests())('accessibility of every admin page', () => {
  let app: TestApp;
  let smtp: TestSmtp;
  let page: Page;
  let browser: TestBrowser | undefined;
  let microsoft: FakeProvider;
  let google: FakeProvider;
  const seed: Record<string, string> = {};
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    smtp = await startTestSmtp({
      starttls: false,
      onRcptTo: (a) => (a.startsWith('nobody') ? { code: 550, message: '5.1.1 mailbox unavailable' } : undefined),
    });
    microsoft = await startFakeProvider({ kind: 'microsoft' });
    google = await startFakeProvider({ kind: 'google' });
    app = await startTestApp({
      workers: true,
      // The submission settings only label the page after a key is created (this app does not listen on them).
      env: {
        ...providerEnv(microsoft),
        MAILGATE_GOOGLE_ISSUER: google.issuer,
        MAILGATE_SUBMISSION_PORT: '2587',
        MAILGATE_SUBMISSION_HOST: '127.0.0.1',
      },
    });
    await seedOAuthAndNotifications(app, microsoft, google, smtp.port, seed);
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
    await microsoft?.close();
    await google?.close();
  });

  it('the check finds what it should: a field without a label fails it', async () => {
    await page.goto(`${app.url}/admin/audit`);
    await page.evaluate(`document.querySelector('label[for="filter-actor"]').remove()`);
    expect((await axeViolations(page)).join('\n')).toContain('label (critical)');
  });

  for (const lang of ['en', 'ja'] as const) {
    it(
      `has no serious or critical axe violation on any page (${lang})`,
      async () => {
        await page.setViewportSize({ width: 1280, height: 800 });
        await page.goto(`${app.url}/language/${lang}?next=/admin/smtp-servers`);
        const problems: string[] = [];
        for (const p of ADMIN_PAGES) {
          const path = await openAdminPage(page, app, p, seed);
          expect(await page.locator('html').getAttribute('lang'), path).toBe(lang);
          for (const v of await axeViolations(page)) problems.push(`${path}: ${v}`);
          if (process.env.MAILGATE_TEST_PROGRESS) console.log(lang, path, new Date().toISOString());
        }
        expect(problems).toEqual([]);
      },
      PAGES_TIMEOUT_MS,
    );
  }

  it.each(['en', 'ja'] as const)(
    'fits every page, header and navigation included, into 390 px without axe violations (%s)',
    async (lang) => {
      await page.setViewportSize({ width: 390, height: 844 });
      await page.goto(`${app.url}/language/${lang}?next=/admin/mail-queue`);
      const problems: string[] = [];
      for (const p of ADMIN_PAGES) {
        const path = await openAdminPage(page, app, p, seed);
        // The header once overflowed to ~965 px: measured on its own, since overflow hidden there would hide it.
        const header = await page.evaluate<number>("document.querySelector('header')?.scrollWidth ?? 0");
        if (header > 390) problems.push(`${path}: the header is ${header} px wide`);
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
      if (lang === 'en') await screenshot(page, 'mail-queue-390', { fullPage: false });
      expect(problems).toEqual([]);
    },
    PAGES_TIMEOUT_MS,
  );

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
