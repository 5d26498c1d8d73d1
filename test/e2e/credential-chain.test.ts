import { randomBytes } from 'node:crypto';
import net, { type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GRANTS, type GrantRecord } from '../../src/tokens/grants.js';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { afterInstancesLookAgain, notifyEventsOfType } from '../fakes/look-again.js';
import { chromiumPathForTests, openTestBrowser, type TestBrowser } from '../fakes/chromium.js';
import { startOAuthSmtp, type OAuthSmtp } from '../fakes/oauth-flow.js';
import { authorizeThroughServices, createOAuthServer, providerEnv, TEST_ACTOR } from '../fakes/oauth-setup.js';
import { startFakeProvider, type FakeProvider } from '../fakes/oidc-provider.js';
import { redisUrlForTests } from '../fakes/redis.js';
import { startTestSmtp, type TestSmtp } from '../fakes/smtp-server.js';
import { startWebhookReceiver, waitFor, type WebhookReceiver } from '../fakes/webhook-receiver.js';
import { logInWithForm, sendHeldMessage } from './admin-pages.js';

/**
 * Issue 13's "Done when", as one chain on Redis with two instances running workers and token schedulers:
 * the provider revokes the mailbox's grant; within one refresh cycle (the injected clock moves past the access
 * token's life, no forced refresh) exactly one signed grant.needs_reauth webhook and exactly one alert email
 * through another server arrive; every admin page shows the banner; an admin creates a reconnect link on the
 * server page and has it emailed; the owner opens the link from that email in a fresh browser without a
 * mailgate session (on the other instance) and repairs the grant at the provider; exactly one grant.recovered
 * follows, the banner is gone and the held mail goes out through XOAUTH2 with a token the provider introspects.
 */

const MAILBOX = 'alice@example.test';
const ADMIN_PATHS = (serverId: string) => [
  '/admin/smtp-servers',
  `/admin/smtp-servers/${serverId}`,
  '/admin/smtp-servers/new',
  '/admin/oauth-integrations',
  '/admin/mail-queue',
  '/admin/api-keys',
  '/admin/audit',
  '/admin/notifications',
  '/account/password',
];

function textOf(raw: string): string {
  return raw
    .replace(/=\r?\n/g, '')
    .replace(/=([0-9A-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

const subjectOf = (raw: string) => /^Subject: (.*)$/im.exec(raw)?.[1] ?? '';

describe.skipIf(!chromiumPathForTests() || !redisUrlForTests())('the credential chain, end to end', () => {
  let offsetMs = 0;
  let provider: FakeProvider;
  let mailbox: OAuthSmtp;
  let relay: TestSmtp;
  let receiver: WebhookReceiver;
  let a: TestApp;
  let b: TestApp;
  let forwarder: net.Server;
  let baseUrl: string;
  /** Where the forwarder (the public base URL) sends connections: the admin uses instance a, the owner b. */
  let upstreamPort = 0;
  let serverId: string;
  let relayId: string;
  const secret = randomBytes(32).toString('hex');
  const browsers: TestBrowser[] = [];
  const consoleErrors: string[] = [];
  const seams = {
    oauthTuning: { requestTimeoutSec: 2, backoffBaseMs: 100, backoffMaxMs: 500, schedulerPollMs: 30 },
    notifyTuning: { pollMs: 30, webhookTimeoutMs: 1000, backoffBaseMs: 50, backoffCapMs: 200, watchMs: 100 },
  };

  beforeAll(async () => {
    provider = await startFakeProvider({ kind: 'microsoft', accessTokenTtlSec: 3600 });
    mailbox = await startOAuthSmtp(provider);
    relay = await startTestSmtp({ starttls: false });
    receiver = await startWebhookReceiver(secret);
    forwarder = net.createServer((socket) => {
      const upstream = net.connect(upstreamPort, '127.0.0.1');
      socket.pipe(upstream).pipe(socket);
      socket.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.destroy());
    });
    await new Promise<void>((resolve) => forwarder.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(forwarder.address() as AddressInfo).port}`;
    const clock = () => Date.now() + offsetMs;
    const env = { ...providerEnv(provider), MAILGATE_BASE_URL: baseUrl, MAILGATE_QUEUE_RETRY_BASE_MS: '100' };
    a = await startTestApp({ store: 'redis', workers: true, clock, env, seams });
    b = await startTestApp({ shareWith: a, workers: true, clock, seams });
    upstreamPort = Number(new URL(a.url).port);
    ({ serverId } = await createOAuthServer(a.services, provider, mailbox.port));
    await a.services.mail.servers.update(serverId, { username: MAILBOX }, { actor: TEST_ACTOR });
    await authorizeThroughServices(a.services, serverId, MAILBOX);
    relayId = (
      await a.services.mail.servers.create(
        { name: 'Relay', fromAddress: 'it@example.test', host: '127.0.0.1', port: relay.port, protocol: 'smtp' },
        { actor: TEST_ACTOR },
      )
    ).id;
    await a.services.notify.channels.create(
      { name: 'ops hook', type: 'webhook', url: receiver.url, secret, events: undefined },
      TEST_ACTOR,
    );
    await a.services.notify.channels.create(
      { name: 'ops mail', type: 'email', to: 'ops@example.test', events: ['grant.needs_reauth'] },
      TEST_ACTOR,
    );
  }, 60_000);

  afterAll(async () => {
    for (const br of browsers) await br.close();
    await b?.close();
    await a?.close();
    await receiver?.close();
    await mailbox?.close();
    await relay?.close();
    await provider?.close();
    forwarder?.close();
  });

  it('revoked → one webhook and one email → banner → emailed link → owner repairs → one recovered → mail out', async () => {
    // Revoked at the provider; the clock moves past the access token's life and the schedulers refresh.
    provider.disableAccount(MAILBOX);
    offsetMs += 3600_000;
    await waitFor(
      'needs_reauth',
      async () => (await a.store.get<GrantRecord>(GRANTS, serverId))?.value.status === 'needs_reauth',
    );
    await waitFor('grant.needs_reauth webhook', () => receiver.ofType('grant.needs_reauth').length > 0);
    await relay.waitFor(1, 20_000);
    // Both instances' periodic checks and schedulers keep looking: still one of each.
    await afterInstancesLookAgain([a, b]);
    expect(await notifyEventsOfType(a.store, 'grant.needs_reauth')).toBe(1);
    expect(receiver.ofType('grant.needs_reauth')).toHaveLength(1);
    expect(receiver.ofType('grant.needs_reauth')[0]!.target).toBe(`smtp_server:${serverId}`);
    expect(receiver.badSignatures).toBe(0);
    expect(relay.messages).toHaveLength(1);
    expect(relay.messages[0]!.to).toEqual(['ops@example.test']);
    expect(subjectOf(relay.messages[0]!.raw)).toContain('grant.needs_reauth');

    // Mail sent meanwhile is held.
    const messageId = await sendHeldMessage(a, serverId);

    // Every admin page shows the banner, with a link to the server page.
    const admin = await openTestBrowser(consoleErrors);
    browsers.push(admin);
    const user = await a.createUser('sysadmin');
    await logInWithForm(admin.page, { url: baseUrl }, user);
    for (const path of ADMIN_PATHS(serverId)) {
      await admin.page.goto(`${baseUrl}${path}`);
      const banner = admin.page.locator('p.banner', {
        has: admin.page.locator(`a[href="/admin/smtp-servers/${serverId}"]`),
      });
      expect(await banner.count(), path).toBe(1);
    }

    // The admin creates a reconnect link on the server page and has it emailed through the relay.
    await admin.page.goto(`${baseUrl}/admin/smtp-servers/${serverId}`);
    await admin.page.locator('#emailVia').selectOption(relayId);
    expect(await admin.page.locator('#emailTo').inputValue()).toBe(MAILBOX);
    await admin.page.getByRole('button', { name: 'Create reconnect link' }).click();
    expect(await admin.page.locator('#reconnect-emailed').textContent()).toContain(MAILBOX);
    await relay.waitFor(2, 20_000);
    const email = relay.messages[1]!;
    expect(email.to).toEqual([MAILBOX]);
    const link = /(http:\/\/\S+\/connect\/\S+)/.exec(textOf(email.raw))?.[1];
    expect(link).toMatch(new RegExp(`^${baseUrl}/connect/rl_`));

    // The owner, in a fresh browser with no mailgate session, served by the other instance.
    upstreamPort = Number(new URL(b.url).port);
    provider.enableAccount(MAILBOX);
    const owner = await openTestBrowser(consoleErrors);
    browsers.push(owner);
    await owner.page.goto(link!);
    expect(await owner.page.locator('#connect-asks').textContent()).toContain(MAILBOX);
    await Promise.all([
      owner.page.waitForURL(`${provider.authority}/**`),
      owner.page.getByRole('button', { name: 'Authorize' }).click(),
    ]);
    await owner.page.locator('input[name="login"]').fill(MAILBOX);
    await owner.page.locator('input[name="password"]').fill('any password');
    await owner.page.getByRole('button', { name: 'Sign-in' }).click();
    await Promise.all([
      owner.page.waitForURL(`${baseUrl}/oauth/callback**`, { timeout: 15_000 }),
      owner.page.getByRole('button', { name: 'Continue' }).click(),
    ]);
    expect(await owner.page.locator('#connect-done').textContent()).toContain(MAILBOX);
    expect((await owner.context.cookies(baseUrl)).some((c) => c.name.includes('sid'))).toBe(false);

    // Exactly one grant.recovered; the held mail goes out through XOAUTH2 with an introspected token.
    await waitFor('grant.recovered webhook', () => receiver.ofType('grant.recovered').length > 0);
    await mailbox.waitFor(1);
    await afterInstancesLookAgain([a, b]);
    expect(await notifyEventsOfType(a.store, 'grant.recovered')).toBe(1);
    expect(await notifyEventsOfType(a.store, 'grant.needs_reauth')).toBe(1);
    expect(receiver.ofType('grant.recovered')).toHaveLength(1);
    expect(receiver.ofType('grant.needs_reauth')).toHaveLength(1);
    expect(receiver.badSignatures).toBe(0);
    expect(mailbox.messages).toHaveLength(1);
    expect(mailbox.messages[0]!.user).toBe(MAILBOX);
    expect(mailbox.messages[0]!.raw).toContain('held until reconnected');
    expect(mailbox.authAttempts.at(-1)).toEqual({ user: MAILBOX, accepted: true });
    await expect.poll(async () => (await a.services.mail.queue.get(messageId)).status).toBe('sent');
    // The alert email channel asked for grant.needs_reauth only: the relay got that alert and the link, nothing else.
    expect(relay.messages).toHaveLength(2);

    // The banner is gone on both instances.
    upstreamPort = Number(new URL(a.url).port);
    for (const path of ADMIN_PATHS(serverId)) {
      await admin.page.goto(`${baseUrl}${path}`);
      expect(await admin.page.locator(`p.banner a[href="/admin/smtp-servers/${serverId}"]`).count(), path).toBe(0);
    }
    upstreamPort = Number(new URL(b.url).port);
    await admin.page.goto(`${baseUrl}/admin/smtp-servers`);
    expect(await admin.page.locator(`p.banner a[href="/admin/smtp-servers/${serverId}"]`).count()).toBe(0);
    expect(consoleErrors).toEqual([]);
  }, 120_000);
});
