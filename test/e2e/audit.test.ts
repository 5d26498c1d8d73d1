import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Actor } from '../../src/admin/types.js';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { chromiumPathForTests, openTestBrowser, type TestBrowser } from '../fakes/chromium.js';
import { TEST_ACTOR } from '../fakes/mail-services.js';
import { clickAndLoad, logInWithForm } from './admin-pages.js';

/** The audit page in Chromium: filters by actor, action and time (in the browser's zone), export with the same filters. */

const CAROL: Actor = { type: 'user', id: 'u_carol', email: 'carol@example.test', role: 'sysadmin' };
const T0 = Date.UTC(2026, 2, 1, 0, 0);
const HOUR = 3_600_000;

describe.skipIf(!chromiumPathForTests())('audit page in a real browser', () => {
  let app: TestApp;
  let page: Page;
  let browser: TestBrowser | undefined;
  let serverId: string;
  let now = T0;
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    app = await startTestApp({ clock: () => now });
    serverId = (
      await app.services.mail.servers.create(
        { name: 'Payroll relay', fromAddress: 'payroll@example.com', host: '127.0.0.1', port: 2525 },
        { actor: TEST_ACTOR },
      )
    ).id;
    for (const [h, actor, action] of [
      [1, CAROL, 'smtp_server.update'],
      [2, TEST_ACTOR, 'mail.flush'],
      [3, CAROL, 'smtp_server.test'],
      [30, CAROL, 'smtp_server.update'],
    ] as const) {
      now = T0 + h * HOUR;
      await app.services.audit.record({
        actor,
        action,
        target: `smtp_server:${serverId}`,
        outcome: action === 'smtp_server.test' ? 'failure' : 'success',
        ...(action === 'smtp_server.test' ? { detail: { code: 'auth_failed' } } : {}),
      });
    }
    now = T0 + 48 * HOUR;
    const user = await app.createUser('admin');
    browser = await openTestBrowser(consoleErrors);
    ({ page } = browser);
    // The browser's zone is Tokyo (UTC+9): public/time-zone.js tells mailgate on the first page, and from then on
    // pages show and read Tokyo times.
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Emulation.setTimezoneOverride', { timezoneId: 'Asia/Tokyo' });
    await logInWithForm(page, app, user);
    const zone = (await page.context().cookies(app.url)).find((c) => c.name === 'mailgate_tz');
    expect(zone?.value).toBe('Asia/Tokyo');
  });

  afterAll(async () => {
    await browser?.close();
    await app?.close();
  });

  const rows = () => page.locator('table.audit tbody tr');

  it('filters by actor and action, and exports the same entries', async () => {
    await page.goto(`${app.url}/admin/audit`);
    await page.getByLabel('Actor').fill('carol');
    await page.getByLabel('Action', { exact: true }).fill('smtp_server');
    await clickAndLoad(page, page.getByRole('button', { name: 'Filter' }));
    expect(await rows().count()).toBe(3);
    const failed = rows().filter({ hasText: 'smtp_server.test' });
    expect(await failed.locator('.target a').textContent()).toBe('Payroll relay');
    expect(await failed.locator('dl.details').textContent()).toContain('auth_failed');
    const iso = new Date(T0 + 3 * HOUR).toISOString();
    const time = failed.locator('time');
    expect(await time.getAttribute('title')).toBe(iso);
    expect(await time.textContent()).toContain('12:00:00');

    const href = (await page.locator('#audit-export').getAttribute('href'))!;
    expect(href).toBe('/admin/audit/export?actor=carol&action=smtp_server');
    const exported = await page.evaluate<string>(`fetch(${JSON.stringify(href)}).then((r) => r.text())`);
    expect(exported.trim().split('\n')).toHaveLength(3);
  });

  it('filters by a time range typed in the browser zone', async () => {
    await page.goto(`${app.url}/admin/audit`);
    // 10:00 to 11:30 in Tokyo is 01:00 to 02:30 UTC: the update at 01:00 and the flush at 02:00.
    await page.getByLabel('From').fill('2026-03-01T10:00');
    await page.getByLabel('Until').fill('2026-03-01T11:30');
    await clickAndLoad(page, page.getByRole('button', { name: 'Filter' }));
    const text = await rows().allTextContents();
    expect(text).toHaveLength(2);
    expect(text[0]).toContain('mail.flush');
    expect(text[1]).toContain('smtp_server.update');
    expect(await page.getByLabel('From').inputValue()).toBe('2026-03-01T10:00');
    await clickAndLoad(page, page.getByRole('link', { name: 'Clear filters' }));
    expect(await rows().count()).toBeGreaterThanOrEqual(6);
    expect(consoleErrors).toEqual([]);
  });
});
