import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { messageInput } from '../../src/mail/compose.js';
import type { MessageView } from '../../src/mail/queue.js';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { chromiumPathForTests, openTestBrowser, type TestBrowser } from '../fakes/chromium.js';
import { eventually, TEST_ACTOR } from '../fakes/mail-services.js';
import { startTestSmtp, type TestSmtp } from '../fakes/smtp-server.js';
import { clickAndLoad, logInWithForm, screenshot } from './admin-pages.js';

/** The mail queue page in Chromium: the list, its filters and pages, a message's page, and the hourly chart. */

describe.skipIf(!chromiumPathForTests())('mail queue page in a real browser', () => {
  let app: TestApp;
  let smtp: TestSmtp;
  let page: Page;
  let browser: TestBrowser | undefined;
  let failedId: string;
  let serverId: string;
  const consoleErrors: string[] = [];

  async function send(to: string, subject: string, status: MessageView['status']): Promise<string> {
    const input = messageInput.parse({ to, subject, text: 'hello' });
    const { id } = await app.services.mail.queue.enqueue({ ...input, serverId });
    await eventually(
      () => app.services.mail.queue.get(id),
      (m) => m.status === status,
      15_000,
      `${subject} ${status}`,
    );
    return id;
  }

  beforeAll(async () => {
    smtp = await startTestSmtp({
      starttls: false,
      onRcptTo: (address) =>
        address.startsWith('nobody') ? { code: 550, message: '5.1.1 mailbox unavailable' } : undefined,
    });
    app = await startTestApp({ workers: true, env: { MAILGATE_QUEUE_RETRY_BASE_MS: '60000' } });
    serverId = (
      await app.services.mail.servers.create(
        { name: 'Relay one', fromAddress: 'notify@example.com', host: '127.0.0.1', port: smtp.port, tls: false },
        { actor: TEST_ACTOR },
      )
    ).id;
    for (let i = 0; i < 52; i++) await send(`user${i}@example.net`, `Report ${i}`, 'sent');
    failedId = await send('nobody@example.net', 'Bounced invoice', 'failed');
    const user = await app.createUser('sysadmin');
    browser = await openTestBrowser(consoleErrors);
    ({ page } = browser);
    await page.setViewportSize({ width: 1280, height: 800 });
    await logInWithForm(page, app, user);
  });

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await smtp?.close();
  });

  it('lists the newest 50 messages and pages to the older ones with a cursor', async () => {
    await page.goto(`${app.url}/admin/mail-queue`);
    const rows = page.locator('table.messages tbody tr');
    expect(await rows.count()).toBe(50);
    expect(await rows.first().getAttribute('data-message-id')).toBe(failedId);
    await clickAndLoad(page, page.getByRole('link', { name: 'Older' }));
    expect(new URL(page.url()).searchParams.get('cursor')).toBeTruthy();
    expect(await rows.count()).toBe(3);
    expect(await page.locator('table.messages').textContent()).toContain('Report 0');
    expect(await page.getByRole('link', { name: 'Older' }).count()).toBe(0);
    await clickAndLoad(page, page.getByRole('link', { name: 'Newest' }));
    expect(await rows.count()).toBe(50);
  });

  it('filters by status, server and recipient', async () => {
    await page.goto(`${app.url}/admin/mail-queue`);
    await page.getByLabel('Status').selectOption('failed');
    await page.getByLabel('Server').selectOption(serverId);
    await clickAndLoad(page, page.getByRole('button', { name: 'Filter' }));
    const rows = page.locator('table.messages tbody tr');
    expect(await rows.count()).toBe(1);
    expect(await rows.first().textContent()).toContain('Bounced invoice');
    expect(await page.getByLabel('Status').inputValue()).toBe('failed');

    await clickAndLoad(page, page.getByRole('link', { name: 'Clear filters' }));
    await page.getByLabel('Recipient contains').fill('USER17@');
    await clickAndLoad(page, page.getByRole('button', { name: 'Filter' }));
    expect(await rows.count()).toBe(1);
    expect(await rows.first().textContent()).toContain('Report 17');

    await page.getByLabel('Recipient contains').fill('nobody-at-all');
    await clickAndLoad(page, page.getByRole('button', { name: 'Filter' }));
    expect(await page.locator('#no-messages').textContent()).toContain('No message matches');
  });

  it("shows a message's attempts, last error with its hint, and each recipient's result", async () => {
    await page.goto(`${app.url}/admin/mail-queue?status=failed`);
    await clickAndLoad(page, page.getByRole('link', { name: 'Bounced invoice' }));
    expect(new URL(page.url()).pathname).toBe(`/admin/mail-queue/${failedId}`);
    expect(await page.locator('#message-status').textContent()).toBe('failed');
    expect(await page.locator('#message-attempts').textContent()).toBe('1');
    const error = (await page.locator('#last-error').textContent()) ?? '';
    expect(error).toContain('550');
    expect(error).toContain('What to do:');
    const recipients = (await page.locator('table.recipients').textContent()) ?? '';
    expect(recipients).toContain('nobody@example.net');
    expect(recipients).toContain('rejected');
    await screenshot(page, 'mail-message');
  });

  it('draws outcomes per hour as inline SVG, with the totals of the last 7 days', async () => {
    await page.goto(`${app.url}/admin/mail-queue`);
    expect(await page.locator('[data-total="sent"]').textContent()).toBe('52');
    expect(await page.locator('[data-total="failed"]').textContent()).toBe('1');
    expect(await page.locator('[data-total="deferred"]').textContent()).toBe('0');
    const sent = page.locator('svg.chart-svg polyline.series-sent');
    const points = ((await sent.getAttribute('points')) ?? '').split(' ');
    expect(points).toHaveLength(168);
    // The current hour is the last point, drawn at the top of the scale; the hour before is at zero.
    const y = (p: string) => Number(p.split(',')[1]);
    expect(y(points.at(-1)!)).toBeLessThan(y(points.at(-2)!));
    const box = await page.locator('svg.chart-svg').boundingBox();
    expect(box!.width).toBeGreaterThan(500);
    await screenshot(page, 'mail-queue');
    expect(consoleErrors).toEqual([]);
  });

  it('deletes a message only after the confirmation step', async () => {
    await page.goto(`${app.url}/admin/mail-queue/${failedId}`);
    await clickAndLoad(page, page.getByRole('button', { name: 'Delete' }));
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Delete message');
    expect((await app.services.mail.queue.get(failedId)).status).toBe('failed');
    await clickAndLoad(page, page.getByRole('button', { name: 'Confirm' }));
    expect(new URL(page.url()).pathname).toBe('/admin/mail-queue');
    await expect(app.services.mail.queue.get(failedId)).rejects.toThrow();
  });
});
