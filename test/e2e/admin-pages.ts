import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Locator, Page } from 'playwright-core';
import type { TestApp } from '../fakes/app.js';

/**
 * What the browser tests share about the admin pages: every page to check (the accessibility test visits each
 * one in both languages; add a page of yours here), logging in through the form, and the screenshots kept in
 * docs/screenshots (rewritten only when MAILGATE_UPDATE_SCREENSHOTS=1, so a plain test run never dirties the
 * checkout).
 */

export interface AdminPage {
  /** A path, or a function of the seeded data (ids made at run time). */
  path: string | ((seed: Record<string, string>) => string);
  /** Pages that need no login. */
  anonymous?: boolean;
}

export const ADMIN_PAGES: AdminPage[] = [
  { path: '/login', anonymous: true },
  { path: '/admin/smtp-servers' },
  { path: '/admin/smtp-servers/new' },
  { path: (s) => `/admin/smtp-servers/${s.serverId}` },
  { path: '/admin/oauth-integrations' },
  { path: '/admin/oauth-integrations/new' },
  { path: '/admin/mail-queue' },
  { path: '/admin/mail-queue?status=failed' },
  { path: (s) => `/admin/mail-queue/${s.failedMessageId}` },
  { path: '/admin/api-keys' },
  { path: '/admin/audit' },
  { path: '/account/password' },
  { path: '/admin/no-such-page' },
];

export function pathOf(p: AdminPage, seed: Record<string, string>): string {
  return typeof p.path === 'string' ? p.path : p.path(seed);
}

export async function logInWithForm(page: Page, app: TestApp, user: { email: string; password: string }) {
  await page.goto(`${app.url}/login`);
  await page.locator('#email').fill(user.email);
  await page.locator('#password').fill(user.password);
  await Promise.all([page.waitForURL((url) => url.pathname !== '/login'), page.locator('form.stacked button').click()]);
}

const screenshotDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../docs/screenshots');

export const updateScreenshots = process.env.MAILGATE_UPDATE_SCREENSHOTS === '1';

/** Saves a screenshot of the page as docs/screenshots/<name>.png when screenshots are being updated. */
export async function screenshot(page: Page, name: string, options: { fullPage?: boolean } = {}): Promise<void> {
  if (!updateScreenshots) return;
  await mkdir(screenshotDir, { recursive: true });
  await page.screenshot({ path: path.join(screenshotDir, `${name}.png`), fullPage: options.fullPage ?? false });
}

/** Clicks a link or submit button and waits for the page it loads. */
export async function clickAndLoad(page: Page, target: Locator): Promise<void> {
  await Promise.all([page.waitForEvent('load'), target.click()]);
}
