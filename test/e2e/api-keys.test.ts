import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServerInput } from '../../src/mail/servers.js';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { chromiumPathForTests, openTestBrowser, type TestBrowser } from '../fakes/chromium.js';

/**
 * A real Chromium on the API key page: a send key with a policy, shown once with the SMTP settings an app needs,
 * a reload that creates nothing, Revoke through its confirmation step, the page in Japanese, and no serious
 * accessibility problem (axe-core).
 */

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

async function seriousViolations(page: Page): Promise<string[]> {
  // Evaluated through the debugging protocol, so the page's CSP (scripts from 'self' only) does not apply.
  await page.evaluate(axeSource);
  return page.evaluate(async () => {
    const axe = (
      globalThis as unknown as {
        axe: {
          run(ctx: string): Promise<{ violations: { id: string; impact: string; nodes: { target: string[] }[] }[] }>;
        };
      }
    ).axe;
    const result = await axe.run('main');
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  });
}

describe.skipIf(!chromiumPathForTests())('API keys in a real browser', () => {
  let app: TestApp;
  let page: Page;
  let browser: TestBrowser | undefined;
  let serverId: string;
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    app = await startTestApp({ env: { MAILGATE_SUBMISSION_PORT: '2587', MAILGATE_SUBMISSION_HOST: '127.0.0.1' } });
    serverId = (
      await app.services.mail.servers.create(
        createServerInput.parse({
          name: 'Main relay',
          fromAddress: 'notify@example.com',
          host: '127.0.0.1',
          port: 2525,
          authMethod: 'none',
          isDefault: true,
        }),
        { actor: { type: 'system', id: 'test' } },
      )
    ).id;
    const user = await app.createUser('sysadmin');
    browser = await openTestBrowser(consoleErrors);
    ({ page } = browser);
    await page.goto(`${app.url}/admin/api-keys`);
    await page.getByLabel('Email').fill(user.email);
    await page.getByLabel('Password').fill(user.password);
    await Promise.all([
      page.waitForURL(`${app.url}/admin/api-keys`),
      page.getByRole('button', { name: 'Log in' }).click(),
    ]);
  });

  afterAll(async () => {
    await browser?.close();
    await app?.close();
  });

  it('creates a send key with a policy; shows it once with the SMTP settings, ready to copy', async () => {
    await page.getByLabel('Name').fill('issue tracker');
    await page.getByRole('checkbox', { name: /^send/ }).check();
    await page.locator('#serverId').selectOption(serverId);
    await page.locator('#allowedFrom').fill('notify@example.com');
    await page.locator('#rateLimitPerMinute').fill('30');
    await Promise.all([
      page.waitForURL(`${app.url}/admin/api-keys`),
      page.getByRole('button', { name: 'Create API key' }).click(),
    ]);
    const key = await page.getByLabel('New API key').inputValue();
    expect(key).toMatch(/^mgk_[A-Za-z0-9_-]{43}$/);
    expect(await page.locator('#smtp-host').inputValue()).toBe('127.0.0.1');
    expect(await page.locator('#smtp-port').inputValue()).toBe('2587');
    expect(await page.locator('#smtp-tls').textContent()).toContain('STARTTLS');
    expect(await page.locator('#smtp-user').inputValue()).toBe('issue tracker');
    await page.locator('button[data-copy="smtp-port"]').click();
    await expect.poll(() => page.locator('button[data-copy="smtp-port"]').textContent()).toBe('Copied');
    expect(await page.locator('tr', { hasText: 'issue tracker' }).locator('.key-policy').textContent()).toContain(
      '30/min',
    );
    expect(await seriousViolations(page)).toEqual([]);

    // Reloading the page after the redirect creates nothing and no longer shows the key.
    await page.reload();
    expect(await page.content()).not.toContain(key);
    expect((await app.services.apiKeys.list()).filter((k) => k.name === 'issue tracker')).toHaveLength(1);
  });

  it('revokes through the confirmation step', async () => {
    const row = page.locator('tr', { hasText: 'issue tracker' });
    await row.getByRole('button', { name: 'Revoke' }).click();
    await page.getByRole('button', { name: 'Confirm' }).waitFor();
    expect(await page.getByRole('alertdialog').textContent()).toContain('Revoke the API key "issue tracker"');
    expect((await app.services.apiKeys.list()).find((k) => k.name === 'issue tracker')?.status).toBe('active');
    await Promise.all([
      page.waitForURL(`${app.url}/admin/api-keys`),
      page.getByRole('button', { name: 'Confirm' }).click(),
    ]);
    expect(await page.getByRole('status').textContent()).toContain('is revoked');
    expect((await app.services.apiKeys.list()).find((k) => k.name === 'issue tracker')?.status).toBe('revoked');
  });

  it('is in Japanese when the language is switched', async () => {
    await Promise.all([
      page.waitForURL(`${app.url}/admin/api-keys`),
      page.getByRole('link', { name: '日本語' }).click(),
    ]);
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('API キー');
    expect(await page.getByRole('button', { name: 'API キーを作成' }).count()).toBe(1);
    expect(await seriousViolations(page)).toEqual([]);
    expect(consoleErrors).toEqual([]);
  });
});
