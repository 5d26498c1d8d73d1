import net, { type AddressInfo } from 'node:net';
import type { Page } from 'playwright-core';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitUntil } from '../fakes/api-setup.js';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { chromiumPathForTests, openTestBrowser, type TestBrowser } from '../fakes/chromium.js';
import { startGraphFake } from '../fakes/graph-api.js';
import type { MailApiFake } from '../fakes/mail-api.js';
import { authorizeThroughServices, createOAuthServer, providerEnv } from '../fakes/oauth-setup.js';
import { startFakeProvider, type FakeProvider } from '../fakes/oidc-provider.js';

/**
 * In a real Chromium: an SMTP server refuses XOAUTH2 with 535 5.7.139 (SMTP AUTH off for the tenant), the held
 * message's server page offers Switch to Microsoft Graph, one click leads through Authorize (the 307 repeats
 * the post) to the provider's sign-in and consent and back, and the held message goes out through Graph.
 */

describe.skipIf(!chromiumPathForTests())('535 5.7.139 → Switch to Microsoft Graph in a browser', () => {
  let provider: FakeProvider;
  let graph: MailApiFake;
  let blocked: SMTPServer;
  let app: TestApp;
  let browser: TestBrowser | undefined;
  let page: Page;
  let forwarder: net.Server;
  let baseUrl: string;
  let serverId: string;
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    provider = await startFakeProvider({ kind: 'microsoft', accessTokenTtlSec: 300 });
    graph = await startGraphFake(provider);
    blocked = new SMTPServer({
      logger: false,
      disableReverseLookup: true,
      authMethods: ['XOAUTH2'],
      allowInsecureAuth: true,
      disabledCommands: ['STARTTLS'],
      onAuth(_auth, _session, cb) {
        const err = new Error(
          '5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.',
        ) as Error & { responseCode: number };
        err.responseCode = 535;
        cb(err);
      },
    });
    await new Promise<void>((resolve) => blocked.listen(0, '127.0.0.1', resolve));
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
      env: {
        ...providerEnv(provider),
        MAILGATE_BASE_URL: baseUrl,
        MAILGATE_GRAPH_URL: graph.url,
        MAILGATE_QUEUE_RETRY_BASE_MS: '100',
      },
    });
    appPort = Number(new URL(app.url).port);
    const port = (blocked.server.address() as AddressInfo).port;
    serverId = (await createOAuthServer(app.services, provider, port)).serverId;
    await authorizeThroughServices(app.services, serverId);
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
    await new Promise<void>((resolve) => blocked.close(() => resolve()));
    await graph?.close();
    await provider?.close();
    forwarder?.close();
  });

  it('offers the switch after 5.7.139 and delivers the held message through Graph after one authorization', async () => {
    const { id } = await app.services.mail.queue.enqueue({
      serverId,
      to: ['carol@example.test'],
      subject: 'from SMTP to Graph',
      text: 'hello',
    });
    await waitUntil('held', async () => (await app.services.mail.queue.get(id)).status === 'held');
    await page.goto(`${baseUrl}/admin/smtp-servers/${serverId}`);
    expect(await page.locator('#switch-to-graph').textContent()).toContain('smtp_auth_disabled');
    await Promise.all([
      page.waitForURL(`${provider.authority}/**`),
      page.getByRole('button', { name: 'Switch to Microsoft Graph' }).click(),
    ]);
    await page.locator('input[name="login"]').fill('alice@example.test');
    await page.locator('input[name="password"]').fill('any password');
    await page.getByRole('button', { name: 'Sign-in' }).click();
    await Promise.all([
      page.waitForURL(`${baseUrl}/admin/smtp-servers/${serverId}`, { timeout: 15_000 }),
      page.getByRole('button', { name: 'Continue' }).click(),
    ]);
    expect(await page.locator('#oauth-mailbox').textContent()).toBe('alice@example.test');
    expect(await page.locator('#protocol').inputValue()).toBe('graph');
    await waitUntil('sent', async () => (await app.services.mail.queue.get(id)).status === 'sent');
    expect(graph.messages.map((m) => /^Subject: (.*)$/m.exec(m.mime)?.[1])).toEqual(['from SMTP to Graph']);
    expect(await page.locator('#switch-to-graph').count()).toBe(0);
    expect(consoleErrors.filter((e) => /Content Security Policy|form-action/i.test(e))).toEqual([]);
  });
});
