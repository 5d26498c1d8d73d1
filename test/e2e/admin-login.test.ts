import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { chromiumPathForTests, openTestBrowser, type TestBrowser } from '../fakes/chromium.js';

/** A real Chromium drives the login form, the API key page and logout. */

describe.skipIf(!chromiumPathForTests())('admin login in a real browser', () => {
  let app: TestApp;
  let context: BrowserContext;
  let page: Page;
  let browser: TestBrowser | undefined;
  let user: { email: string; password: string };
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    app = await startTestApp();
    user = await app.createUser('sysadmin');
    browser = await openTestBrowser(consoleErrors);
    ({ context, page } = browser);
  });
  afterAll(async () => {
    await browser?.close();
    await app?.close();
  });

  it('shows an error for a wrong password and stays on the login page', async () => {
    await page.goto(`${app.url}/`);
    expect(new URL(page.url()).pathname).toBe('/login');
    await page.getByLabel('Email').fill(user.email);
    await page.getByLabel('Password').fill('definitely-wrong-password');
    await page.getByRole('button', { name: 'Log in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('Wrong email or password.');
    expect(new URL(page.url()).pathname).toBe('/login');
    expect(await page.getByLabel('Email').inputValue()).toBe(user.email);
  });

  it('logs in and lands on the page asked for', async () => {
    await page.goto(`${app.url}/admin/audit`);
    expect(new URL(page.url()).pathname).toBe('/login');
    await page.getByLabel('Email').fill(user.email);
    await page.getByLabel('Password').fill(user.password);
    await Promise.all([
      page.waitForURL(`${app.url}/admin/audit`),
      page.getByRole('button', { name: 'Log in' }).click(),
    ]);
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Audit log');
    expect(await page.locator('.who').textContent()).toContain(user.email);
    const cookies = await context.cookies(app.url);
    const sid = cookies.find((c) => c.name === 'mailgate.sid');
    expect(sid?.httpOnly).toBe(true);
    expect(sid?.sameSite).toBe('Lax');
  });

  it('creates an API key that is shown once and works against the API', async () => {
    await page.goto(`${app.url}/admin/api-keys`);
    await page.getByLabel('Name').fill('browser-made');
    await page.getByRole('checkbox', { name: /^admin/ }).check();
    await page.getByRole('button', { name: 'Create API key' }).click();
    const keyInput = page.getByLabel('New API key');
    await keyInput.waitFor();
    const key = await keyInput.inputValue();
    expect(key).toMatch(/^mgk_[A-Za-z0-9_-]{43}$/);
    expect(await page.getByText('shown only once').count()).toBeGreaterThan(0);
    await page.getByRole('button', { name: 'Copy' }).click();
    await expect.poll(() => page.getByRole('button', { name: 'Copied' }).count()).toBe(1);

    // Usable at once against the API with the scope ticked.
    const listed = await fetch(`${app.url}/api/v1/api-keys`, { headers: { authorization: `Bearer ${key}` } });
    expect(listed.status).toBe(200);
    const body = (await listed.json()) as { items: { name: string; scopes: string[] }[] };
    expect(body.items.find((k) => k.name === 'browser-made')?.scopes).toEqual(['admin']);

    // Reloading never shows it again.
    await page.goto(`${app.url}/admin/api-keys`);
    expect(await page.content()).not.toContain(key);
    expect(await page.locator('table.api-keys').textContent()).toContain('browser-made');
  });

  it('logs out: the admin pages ask for a login again', async () => {
    await page.goto(`${app.url}/admin/api-keys`);
    await Promise.all([
      page.waitForURL(`${app.url}/login`),
      page.getByRole('button', { name: 'Log out', exact: true }).click(),
    ]);
    await page.goto(`${app.url}/admin/api-keys`);
    expect(new URL(page.url()).pathname).toBe('/login');
    expect(consoleErrors).toEqual([]);
  });
});
