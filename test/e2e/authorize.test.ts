import net, { type AddressInfo } from 'node:net';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { chromiumPathForTests, openTestBrowser, type TestBrowser } from '../fakes/chromium.js';
import { startOAuthSmtp, type OAuthSmtp } from '../fakes/oauth-flow.js';
import { providerEnv, TEST_ACTOR } from '../fakes/oauth-setup.js';
import { startFakeProvider, type FakeProvider } from '../fakes/oidc-provider.js';

/**
 * A real Chromium adds a Microsoft integration, presses Authorize on an SMTP server, signs in and consents
 * at the local provider, comes back to the server page with the mailbox shown, and a message then goes out
 * through XOAUTH2 (the SMTP server checks the token by introspection). The Authorize form's redirect to
 * the provider must not be blocked by the CSP (form-action).
 */

describe.skipIf(!chromiumPathForTests())('Authorize in a real browser (Microsoft flavour)', () => {
  let provider: FakeProvider;
  let smtp: OAuthSmtp;
  let app: TestApp;
  let page: Page;
  let browser: TestBrowser | undefined;
  let serverId: string;
  let forwarder: net.Server;
  let baseUrl: string;
  const consoleErrors: string[] = [];
  const clientId = 'mailgate-browser';
  const clientSecret = 'browser-client-secret-0123456789';

  beforeAll(async () => {
    provider = await startFakeProvider({ kind: 'microsoft', accessTokenTtlSec: 60 });
    smtp = await startOAuthSmtp(provider);
    // MAILGATE_BASE_URL must be known before the app starts: a TCP forwarder on a port taken first.
    let appPort = 0;
    forwarder = net.createServer((socket) => {
      const upstream = net.connect(appPort, '127.0.0.1');
      socket.pipe(upstream).pipe(socket);
      socket.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.destroy());
    });
    await new Promise<void>((resolve) => forwarder.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(forwarder.address() as AddressInfo).port}`;
    app = await startTestApp({
      workers: true,
      env: { ...providerEnv(provider), MAILGATE_BASE_URL: baseUrl, MAILGATE_QUEUE_RETRY_BASE_MS: '100' },
    });
    appPort = Number(new URL(app.url).port);
    await provider.registerClient({
      clientId,
      clientSecret,
      redirectUris: [`${app.config.MAILGATE_BASE_URL}/oauth/callback`],
    });
    const user = await app.createUser('sysadmin');
    browser = await openTestBrowser(consoleErrors);
    ({ page } = browser);
    await page.goto(`${baseUrl}/login`);
    await page.getByLabel('Email').fill(user.email);
    await page.getByLabel('Password').fill(user.password);
    await Promise.all([page.waitForURL(/\/admin\//), page.getByRole('button', { name: 'Log in' }).click()]);
  });

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await smtp?.close();
    await provider?.close();
    forwarder?.close();
  });

  it('refuses the "common" tenant with an explanation, then adds the integration', async () => {
    await page.goto(`${baseUrl}/admin/oauth-integrations/new`);
    expect(await page.locator('#redirect-uri').textContent()).toBe(`${app.config.MAILGATE_BASE_URL}/oauth/callback`);
    await page.locator('#name').fill('Contoso 365');
    await page.locator('#provider').selectOption('microsoft');
    await page.locator('#clientId').fill(clientId);
    await page.locator('#clientSecret').fill(clientSecret);
    await page.locator('#tenant').fill('common');
    await page.getByRole('button', { name: 'Add' }).click();
    expect(await page.locator('ul.errors').textContent()).toContain('issuer template');
    expect(await page.content()).not.toContain(clientSecret);
    await page.locator('#clientSecret').fill(clientSecret);
    await page.locator('#tenant').fill(provider.tenant);
    await Promise.all([
      page.waitForURL(/\/admin\/oauth-integrations\/oi_/),
      page.getByRole('button', { name: 'Add' }).click(),
    ]);
    expect(await page.getByRole('status').first().textContent()).toContain('added');
    expect(await page.content()).not.toContain(clientSecret);
    const integrationId = page.url().split('/').pop()!;
    const server = await app.services.mail.servers.create(
      {
        name: 'Microsoft mailbox',
        fromAddress: 'alice@example.test',
        host: '127.0.0.1',
        port: smtp.port,
        protocol: 'smtp',
        authMethod: 'oauth2',
        oauthIntegrationId: integrationId,
      },
      { actor: TEST_ACTOR },
    );
    serverId = server.id;
  });

  it('Authorize → sign in → consent → back on the server page with the mailbox shown', async () => {
    await page.goto(`${baseUrl}/admin/smtp-servers/${serverId}`);
    await Promise.all([
      page.waitForURL(`${provider.authority}/**`),
      page.getByRole('button', { name: 'Authorize' }).click(),
    ]);
    await page.locator('input[name="login"]').fill('alice@example.test');
    await page.locator('input[name="password"]').fill('any password');
    await page.getByRole('button', { name: 'Sign-in' }).click();
    await Promise.all([
      page.waitForURL(`${baseUrl}/admin/smtp-servers/${serverId}`, { timeout: 15_000 }),
      page.getByRole('button', { name: 'Continue' }).click(),
    ]);
    expect(await page.locator('#oauth-mailbox').textContent()).toBe('alice@example.test');
    expect(await page.getByRole('status').first().textContent()).toContain('alice@example.test');
    // With a grant the panel offers Re-authorize instead of Authorize (exact names: one contains the other).
    const reauthorize = page.getByRole('button', { name: 'Re-authorize', exact: true });
    await reauthorize.waitFor({ state: 'visible', timeout: 5000 });
    expect(await reauthorize.count()).toBe(1);
    expect(await page.getByRole('button', { name: 'Authorize', exact: true }).count()).toBe(0);
    expect(consoleErrors.filter((e) => /Content Security Policy|form-action/i.test(e))).toEqual([]);
  });

  it('a message then goes out through XOAUTH2', async () => {
    const key = await app.apiKey(['send']);
    const res = await fetch(`${app.url}/api/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ serverId, to: 'bob@example.test', subject: 'from the browser test', text: 'hello' }),
    });
    expect(res.status).toBe(202);
    await smtp.waitFor(1);
    expect(smtp.messages[0]?.user).toBe('alice@example.test');
    expect(smtp.messages[0]?.raw).toContain('from the browser test');
  });

  it('Disconnect deletes the tokens and says Microsoft has no revocation endpoint', async () => {
    await page.goto(`${baseUrl}/admin/smtp-servers/${serverId}`);
    // A confirmation step first (without JavaScript), then the disconnect.
    await Promise.all([
      page.waitForURL(`${baseUrl}/admin/smtp-servers/${serverId}/disconnect`),
      page.getByRole('button', { name: 'Disconnect' }).click(),
    ]);
    expect(await page.locator('#confirm-question').textContent()).toContain('Disconnect the authorized mailbox');
    await Promise.all([
      page.waitForURL(`${baseUrl}/admin/smtp-servers/${serverId}`),
      page.getByRole('button', { name: 'Confirm' }).click(),
    ]);
    const flash = await page.getByRole('status').first().textContent();
    expect(flash).toContain('Disconnected alice@example.test');
    expect(flash).toContain('Microsoft has no token revocation endpoint');
    expect(await page.getByRole('button', { name: 'Authorize' }).count()).toBe(1);
    expect(consoleErrors).toEqual([]);
  });
});
