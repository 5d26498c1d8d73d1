import { randomBytes } from 'node:crypto';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { chromiumPathForTests, openTestBrowser, type TestBrowser } from '../fakes/chromium.js';
import { TEST_ACTOR } from '../fakes/oauth-setup.js';
import { startWebhookReceiver, type WebhookReceiver } from '../fakes/webhook-receiver.js';

/** A real Chromium adds a webhook channel on /admin/notifications, presses Send test, and deletes it after confirming. */

describe.skipIf(!chromiumPathForTests())('the notifications page in a real browser', () => {
  let app: TestApp;
  let page: Page;
  let browser: TestBrowser | undefined;
  let receiver: WebhookReceiver;
  const secret = randomBytes(32).toString('hex');
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    app = await startTestApp();
    receiver = await startWebhookReceiver(secret);
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
    await receiver?.close();
    await app?.close();
  });

  it('says plainly that there is no server for email alerts', async () => {
    await page.goto(`${app.url}/admin/notifications`);
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Notifications');
    expect(await page.locator('#alert-server').textContent()).toContain('no healthy SMTP server');
    expect(await page.locator('nav a[aria-current="page"]').textContent()).toBe('Notifications');
  });

  it('adds a webhook channel; the secret is not shown back', async () => {
    await page.getByLabel('Name', { exact: true }).fill('ops hook');
    await page.getByLabel('Type').selectOption('webhook');
    await page.getByLabel('Webhook URL').fill(receiver.url);
    await page.getByLabel(/Signing secret/).fill(secret);
    await page.getByRole('checkbox', { name: 'grant.needs_reauth' }).check();
    await page.getByRole('button', { name: 'Add', exact: true }).click();
    await expect.poll(() => page.locator('.flash').textContent()).toContain('Channel "ops hook" was added.');
    const row = page.locator('tr', { hasText: 'ops hook' });
    expect(await row.textContent()).toContain('grant.needs_reauth');
    expect(await page.content()).not.toContain(secret);
  });

  it('Send test delivers a signed test event and says so', async () => {
    await page.locator('tr', { hasText: 'ops hook' }).getByRole('button', { name: 'Send test' }).click();
    await expect.poll(() => page.locator('.flash').textContent()).toContain('was delivered');
    expect(receiver.ofType('test')).toHaveLength(1);
    expect(receiver.badSignatures).toBe(0);
  });

  it('edits a channel; a blank secret keeps the current one', async () => {
    await page.locator('tr', { hasText: 'ops hook' }).getByRole('link', { name: 'Edit' }).click();
    expect(await page.getByLabel(/Signing secret/).inputValue()).toBe('');
    await page.getByLabel('Name', { exact: true }).fill('ops hook renamed');
    await page.getByRole('checkbox', { name: 'grant.recovered' }).check();
    await page.getByRole('button', { name: 'Update', exact: true }).click();
    await expect.poll(() => page.locator('.flash').textContent()).toContain('Channel "ops hook renamed" was updated.');
    expect(await page.locator('tr', { hasText: 'ops hook renamed' }).textContent()).toContain(
      'grant.needs_reauth, grant.recovered',
    );
    await page.locator('tr', { hasText: 'ops hook' }).getByRole('button', { name: 'Send test' }).click();
    await expect.poll(() => page.locator('.flash').textContent()).toContain('was delivered');
    expect(receiver.ofType('test')).toHaveLength(2);
    expect(receiver.badSignatures).toBe(0);
  });

  it('an email channel with a healthy server names that server', async () => {
    await app.services.mail.servers.create(
      { name: 'relay one', fromAddress: 'alerts@example.test', host: '127.0.0.1', port: 2525, tls: false },
      { actor: TEST_ACTOR },
    );
    await page.goto(`${app.url}/admin/notifications`);
    expect(await page.locator('#alert-server').textContent()).toContain('relay one');
  });

  it('deletes a channel only after the confirmation step', async () => {
    await page.locator('tr', { hasText: 'ops hook' }).getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('button', { name: 'Confirm' }).waitFor();
    expect(await app.services.notify.channels.list()).toHaveLength(1);
    await page.getByRole('button', { name: 'Confirm' }).click();
    await expect.poll(() => page.locator('.flash').textContent()).toContain('was deleted');
    expect(await app.services.notify.channels.list()).toHaveLength(0);
  });

  it('reads in Japanese', async () => {
    await page.goto(`${app.url}/language/ja?next=/admin/notifications`);
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('通知');
    expect(await page.getByRole('button', { name: '追加' }).count()).toBe(1);
    expect(consoleErrors).toEqual([]);
  });
});
