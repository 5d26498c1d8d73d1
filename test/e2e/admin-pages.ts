import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Locator, Page } from 'playwright-core';
import { expect } from 'vitest';
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
  /** Pages reached by a form post (a confirmation step, a key just created): how to get there from `path`. */
  reach?: (page: Page) => Promise<void>;
  /** How the page is named in a failure, when `path` alone does not say it. */
  label?: string;
  /** A selector only the intended page has: the check fails rather than test a refusal or error page instead. */
  shows?: string;
}

export const ADMIN_PAGES: AdminPage[] = [
  { path: '/login', anonymous: true },
  { path: '/admin/smtp-servers' },
  { path: '/admin/smtp-servers/new' },
  { path: (s) => `/admin/smtp-servers/${s.serverId}` },
  { path: (s) => `/admin/smtp-servers/${s.oauthServerId}` },
  {
    path: (s) => `/admin/smtp-servers/${s.serverId}`,
    label: 'the confirmation step of Delete',
    // A delete posted without `confirmed=yes` only answers the confirmation page (views/confirm.eta).
    reach: (page) => clickAndLoad(page, page.locator('form[action$="/delete"] button[type="submit"]').first()),
    shows: 'input[name="confirmed"][value="yes"]',
  },
  { path: '/admin/oauth-integrations' },
  { path: '/admin/oauth-integrations/new' },
  { path: (s) => `/admin/oauth-integrations/${s.authCodeIntegrationId}` },
  { path: (s) => `/admin/oauth-integrations/${s.clientCredentialsIntegrationId}` },
  { path: (s) => `/admin/oauth-integrations/${s.serviceAccountIntegrationId}` },
  { path: '/admin/mail-queue' },
  { path: '/admin/mail-queue?status=failed' },
  { path: (s) => `/admin/mail-queue/${s.failedMessageId}` },
  { path: '/admin/notifications' },
  { path: (s) => `/admin/notifications/${s.channelId}` },
  { path: '/admin/api-keys' },
  {
    path: '/admin/api-keys',
    label: 'the page after creating an API key (the key and its SMTP settings)',
    reach: async (page) => {
      const form = page.locator('form[action="/admin/api-keys"]');
      await form.locator('#name').fill(`app ${Date.now()}`);
      await form.locator('input[name="scopes"][value="send"]').check();
      await clickAndLoad(page, form.locator('button[type="submit"]'));
      await page.locator('#smtp-host').waitFor({ timeout: 5000 });
    },
  },
  { path: '/admin/audit' },
  { path: '/account/password' },
  { path: (s) => `/connect/${s.reconnectToken}`, anonymous: true, shows: '#connect' },
  { path: '/admin/no-such-page' },
];

export function pathOf(p: AdminPage, seed: Record<string, string>): string {
  return typeof p.path === 'string' ? p.path : p.path(seed);
}

/** Opens the page (following its form post where it has one) and answers the name to report it by. */
export async function openAdminPage(page: Page, app: TestApp, p: AdminPage, seed: Record<string, string>) {
  const path = pathOf(p, seed);
  await page.goto(`${app.url}${path}`);
  if (p.reach) await p.reach(page);
  if (p.shows) await page.locator(p.shows).first().waitFor({ state: 'attached', timeout: 5000 });
  return p.label ? `${path} (${p.label})` : path;
}

/** Logs in through the login form of `app` (or of whatever serves it at `app.url`, e.g. a forwarding proxy). */
export async function logInWithForm(page: Page, app: Pick<TestApp, 'url'>, user: { email: string; password: string }) {
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

/** Sends a message through the API to a server whose grant is dead and waits until the queue holds it. */
export async function sendHeldMessage(app: TestApp, serverId: string): Promise<string> {
  const key = await app.apiKey(['send']);
  const sent = await fetch(`${app.url}/api/v1/messages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ serverId, to: 'bob@example.test', subject: 'held until reconnected', text: 'hello' }),
  });
  expect(sent.status).toBe(202);
  const { id } = (await sent.json()) as { id: string };
  await expect.poll(async () => (await app.services.mail.queue.get(id)).status, { timeout: 10_000 }).toBe('held');
  return id;
}
