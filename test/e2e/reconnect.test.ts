import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import net, { type AddressInfo } from 'node:net';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GRANTS, type GrantRecord } from '../../src/tokens/grants.js';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { chromiumPathForTests, openTestBrowser, type TestBrowser } from '../fakes/chromium.js';
import { startOAuthSmtp, type OAuthSmtp } from '../fakes/oauth-flow.js';
import { authorizeThroughServices, createOAuthServer, providerEnv, TEST_ACTOR } from '../fakes/oauth-setup.js';
import { startFakeProvider, type FakeProvider } from '../fakes/oidc-provider.js';
import { startTestSmtp, type TestSmtp } from '../fakes/smtp-server.js';
import { logInWithForm, sendHeldMessage } from './admin-pages.js';

/**
 * The repair a reconnect link exists for, in real Chromium: the provider revokes the mailbox's grant
 * (invalid_grant → needs_reauth, the server is paused and its mail held); an admin creates a reconnect link on
 * the server page and has it emailed through another server; the mailbox owner opens the emailed link in a
 * fresh browser (no mailgate session), presses Authorize and consents at the provider; the server is healthy
 * again and the held mail goes out through XOAUTH2.
 */

/** The text part of a received message, quoted-printable undone. */
function textOf(raw: string): string {
  return raw
    .replace(/=\r?\n/g, '')
    .replace(/=([0-9A-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/** axe-core's WCAG 2 A/AA violations within `selector` (evaluated through the debugger, so the page's CSP allows it). */
async function axeViolations(page: Page, selector: string): Promise<string[]> {
  const source = await readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
  await page.evaluate(source);
  return page.evaluate(async (include) => {
    const axe = (
      globalThis as unknown as { axe: { run(ctx: unknown, opts: unknown): Promise<{ violations: { id: string }[] }> } }
    ).axe;
    const result = await axe.run({ include: [include] }, { runOnly: ['wcag2a', 'wcag2aa'] });
    return result.violations.map((v) => v.id);
  }, selector);
}

describe.skipIf(!chromiumPathForTests())('reconnect link in a real browser', () => {
  let provider: FakeProvider;
  let mailbox: OAuthSmtp;
  let relay: TestSmtp;
  let app: TestApp;
  let forwarder: net.Server;
  let baseUrl: string;
  let serverId: string;
  let relayId: string;
  const browsers: TestBrowser[] = [];
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    provider = await startFakeProvider({ kind: 'microsoft', accessTokenTtlSec: 60 });
    mailbox = await startOAuthSmtp(provider);
    relay = await startTestSmtp({ starttls: false });
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
    ({ serverId } = await createOAuthServer(app.services, provider, mailbox.port));
    await app.services.mail.servers.update(serverId, { username: 'alice@example.test' }, { actor: TEST_ACTOR });
    await authorizeThroughServices(app.services, serverId, 'alice@example.test');
    relayId = (
      await app.services.mail.servers.create(
        { name: 'Relay', fromAddress: 'it@example.test', host: '127.0.0.1', port: relay.port, protocol: 'smtp' },
        { actor: TEST_ACTOR },
      )
    ).id;
  });

  afterAll(async () => {
    for (const b of browsers) await b.close();
    await app?.close();
    await mailbox?.close();
    await relay?.close();
    await provider?.close();
    forwarder?.close();
  });

  it('revoked at the provider → needs_reauth, mail held; the owner repairs it from the emailed link', async () => {
    // The provider revokes: the next refresh gets invalid_grant.
    provider.disableAccount('alice@example.test');
    await expect(app.services.tokens.getAccessToken(serverId, { force: true })).rejects.toThrow();
    expect((await app.store.get<GrantRecord>(GRANTS, serverId))?.value.status).toBe('needs_reauth');
    await sendHeldMessage(app, serverId);

    // The admin creates a link on the server page and has it emailed through the relay.
    const admin = await openTestBrowser(consoleErrors);
    browsers.push(admin);
    const user = await app.createUser('sysadmin');
    await logInWithForm(admin.page, { url: baseUrl }, user);
    await admin.page.goto(`${baseUrl}/admin/smtp-servers/${serverId}`);
    expect(await axeViolations(admin.page, '#reconnect-links')).toEqual([]);
    await admin.page.locator('#emailVia').selectOption(relayId);
    expect(await admin.page.locator('#emailTo').inputValue()).toBe('alice@example.test');
    await admin.page.getByRole('button', { name: 'Create reconnect link' }).click();
    expect(await admin.page.locator('#reconnect-emailed').textContent()).toContain('alice@example.test');
    const shown = (await admin.page.locator('#reconnect-url').textContent()) ?? '';
    expect(shown).toMatch(new RegExp(`^${baseUrl}/connect/rl_`));

    await relay.waitFor(1);
    const email = relay.messages[0]!;
    expect(email.to).toEqual(['alice@example.test']);
    const link = /(http:\/\/\S+\/connect\/\S+)/.exec(textOf(email.raw))?.[1];
    expect(link).toBe(shown);

    // The owner: a fresh browser, no mailgate session.
    provider.enableAccount('alice@example.test');
    const owner = await openTestBrowser(consoleErrors);
    browsers.push(owner);
    await owner.page.goto(link!);
    expect(await owner.page.locator('#connect-asks').textContent()).toContain('alice@example.test');
    expect(await axeViolations(owner.page, 'main')).toEqual([]);
    await Promise.all([
      owner.page.waitForURL(`${provider.authority}/**`),
      owner.page.getByRole('button', { name: 'Authorize' }).click(),
    ]);
    await owner.page.locator('input[name="login"]').fill('alice@example.test');
    await owner.page.locator('input[name="password"]').fill('any password');
    await owner.page.getByRole('button', { name: 'Sign-in' }).click();
    await Promise.all([
      owner.page.waitForURL(`${baseUrl}/oauth/callback**`, { timeout: 15_000 }),
      owner.page.getByRole('button', { name: 'Continue' }).click(),
    ]);
    expect(await owner.page.locator('#connect-done').textContent()).toContain('alice@example.test');
    expect(await axeViolations(owner.page, 'main')).toEqual([]);
    const ownerCookies = await owner.context.cookies(baseUrl);
    expect(ownerCookies.some((c) => c.name.includes('sid'))).toBe(false);

    // Healthy again, and the held mail goes out through XOAUTH2.
    expect((await app.store.get<GrantRecord>(GRANTS, serverId))?.value.status).toBe('active');
    await mailbox.waitFor(1);
    expect(mailbox.messages[0]?.user).toBe('alice@example.test');
    expect(mailbox.messages[0]?.raw).toContain('held until reconnected');
    expect((await app.services.mail.servers.get(serverId)).paused).toBeNull();

    // The link is useless now.
    await owner.page.goto(link!);
    expect(await owner.page.locator('#connect-refused').getAttribute('data-reason')).toBe('used');
    expect(consoleErrors).toEqual([]);
  });
});
