import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { chromiumPathForTests, openTestBrowser, type TestBrowser } from '../fakes/chromium.js';
import { startTestSmtp, type TestSmtp } from '../fakes/smtp-server.js';

/** A real Chromium configures an SMTP server: add, edit without touching the password, Test connection. */

const PASSWORD = 'browser relay pw 789';

describe.skipIf(!chromiumPathForTests())('SMTP servers in a real browser', () => {
  let app: TestApp;
  let smtp: TestSmtp;
  let page: Page;
  let browser: TestBrowser | undefined;
  let serverUrl: string;
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    smtp = await startTestSmtp({ starttls: false, allowInsecureAuth: true, auth: { user: 'relay', pass: PASSWORD } });
    app = await startTestApp();
    const user = await app.createUser('sysadmin');
    browser = await openTestBrowser(consoleErrors);
    ({ page } = browser);
    await page.goto(`${app.url}/admin/smtp-servers`);
    await page.getByLabel('Email').fill(user.email);
    await page.getByLabel('Password').fill(user.password);
    await Promise.all([
      page.waitForURL(`${app.url}/admin/smtp-servers`),
      page.getByRole('button', { name: 'Log in' }).click(),
    ]);
  });

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await smtp?.close();
  });

  it('adds a server with the form', async () => {
    await page.getByRole('link', { name: 'Configure new SMTP mail server' }).click();
    await page.locator('#name').fill('Browser relay');
    await page.locator('#description').fill('used by the browser test');
    await page.locator('#fromAddress').fill('notify@example.com');
    await page.locator('#emailPrefix').fill('[mg]');
    await page.locator('#host').fill('127.0.0.1');
    await page.locator('#port').fill(String(smtp.port));
    await page.locator('#authMethod').selectOption('basic');
    await page.locator('#username').fill('relay');
    await page.locator('#password').fill(PASSWORD);
    await Promise.all([
      page.waitForURL(/\/admin\/smtp-servers\/srv_/),
      page.getByRole('button', { name: 'Add' }).click(),
    ]);
    serverUrl = page.url();
    expect(await page.getByRole('status').textContent()).toContain('added');
    expect(await page.locator('#name').inputValue()).toBe('Browser relay');
    expect(await page.locator('#password').inputValue()).toBe('');
    expect(await page.content()).not.toContain(PASSWORD);
    await page.goto(`${app.url}/admin/smtp-servers`);
    expect(await page.locator('table.smtp-servers').textContent()).toContain('used by the browser test');
  });

  it('edits without changing the password; Test connection still authenticates and shows the transcript', async () => {
    await page.goto(serverUrl);
    await page.locator('#name').fill('Browser relay (edited)');
    expect(await page.locator('#changePassword').isChecked()).toBe(false);
    await Promise.all([page.waitForURL(serverUrl), page.getByRole('button', { name: 'Update' }).click()]);
    expect(await page.getByRole('status').first().textContent()).toContain('updated');
    await page.getByRole('button', { name: 'Test connection' }).click();
    await page.locator('#transcript').waitFor();
    const transcript = (await page.locator('#transcript').textContent())!;
    expect(transcript).toContain('C: EHLO');
    expect(transcript).toContain('C: AUTH PLAIN ****');
    expect(transcript).not.toContain(PASSWORD);
    expect(await page.locator('#test-result').textContent()).toContain('Succeeded: connected, authenticated (basic)');
    expect(smtp.authAttempts.at(-1)).toEqual({ method: 'PLAIN', user: 'relay' });
  });

  it('a wrong password: Test connection shows the failure, the transcript and a hint', async () => {
    await page.goto(serverUrl);
    await page.locator('#changePassword').check();
    await page.locator('#password').fill('not the password');
    await Promise.all([page.waitForURL(serverUrl), page.getByRole('button', { name: 'Update' }).click()]);
    await page.getByRole('button', { name: 'Test connection' }).click();
    await page.locator('#test-hint').waitFor();
    expect(await page.locator('#test-hint').textContent()).toMatch(/user name or password/);
    expect(await page.getByRole('alert').first().textContent()).toContain('auth_failed');
    expect(await page.locator('#transcript').textContent()).toContain('535');
    expect(consoleErrors).toEqual([]);
  });
});
