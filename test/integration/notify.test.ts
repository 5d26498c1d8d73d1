import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { afterInstancesLookAgain, notifyEventsOfType } from '../fakes/look-again.js';
import { startOAuthSmtp, type OAuthSmtp } from '../fakes/oauth-flow.js';
import { authorizeThroughServices, createOAuthServer, providerEnv, TEST_ACTOR } from '../fakes/oauth-setup.js';
import { startFakeProvider, type FakeProvider } from '../fakes/oidc-provider.js';
import { startTestSmtp, type TestSmtp } from '../fakes/smtp-server.js';
import { startWebhookReceiver, waitFor, type WebhookReceiver } from '../fakes/webhook-receiver.js';

/**
 * The promise of issue 13: revoking a mailbox's grant at the provider produces, within one refresh cycle, exactly
 * one signed webhook and one email through another server; every admin page names the broken server; after
 * re-authorization one grant.recovered follows and the held mail goes out. Bad channel input is refused and no
 * secret reaches the logs.
 */

const logLines: string[] = [];
const logSink = new Writable({
  write(chunk: Buffer, _enc, cb) {
    logLines.push(chunk.toString());
    cb();
  },
});

let offsetMs = 0;
let provider: FakeProvider;
let oauthSmtp: OAuthSmtp;
let sink: TestSmtp;
let receiver: WebhookReceiver;
let app: TestApp;
let key: string;
let serverId: string;
const secret = randomBytes(32).toString('base64url');

async function api(method: string, path: string, body?: unknown) {
  const res = await fetch(`${app.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

beforeAll(async () => {
  provider = await startFakeProvider({ kind: 'microsoft', accessTokenTtlSec: 3600 });
  oauthSmtp = await startOAuthSmtp(provider);
  sink = await startTestSmtp({ starttls: false });
  receiver = await startWebhookReceiver(secret);
  app = await startTestApp({
    store: 'file',
    workers: true,
    clock: () => Date.now() + offsetMs,
    logDestination: logSink,
    env: { ...providerEnv(provider), MAILGATE_LOG_LEVEL: 'debug', MAILGATE_QUEUE_RETRY_BASE_MS: '100' },
    seams: {
      oauthTuning: { requestTimeoutSec: 2, backoffBaseMs: 100, backoffMaxMs: 500, schedulerPollMs: 50 },
      notifyTuning: { pollMs: 50, webhookTimeoutMs: 1000, backoffBaseMs: 50, backoffCapMs: 200, watchMs: 60_000 },
      mail: { queue: { pollMs: 50 } },
    },
  });
  key = await app.apiKey(['admin', 'send']);
  ({ serverId } = await createOAuthServer(app.services, provider, oauthSmtp.port));
  await authorizeThroughServices(app.services, serverId);
  await app.services.mail.servers.create(
    {
      name: 'alerts relay',
      fromAddress: 'alerts@example.test',
      host: '127.0.0.1',
      port: sink.port,
      protocol: 'smtp',
      tls: false,
      authMethod: 'none',
    },
    { actor: TEST_ACTOR },
  );
}, 60_000);

afterAll(async () => {
  await app?.close();
  await receiver?.close();
  await sink?.close();
  await oauthSmtp?.close();
  await provider?.close();
});

describe('notifications of a revoked grant', () => {
  it('creates channels by API; the secret is never answered back', async () => {
    const hook = await api('POST', '/api/v1/notification-channels', {
      name: 'ops webhook',
      type: 'webhook',
      url: receiver.url,
      secret,
    });
    expect(hook.status).toBe(201);
    expect(hook.body.id).toMatch(/^nc_/);
    expect(JSON.stringify(hook.body)).not.toContain(secret);
    const mail = await api('POST', '/api/v1/notification-channels', {
      name: 'on call',
      type: 'email',
      to: 'oncall@example.test',
    });
    expect(mail.status).toBe(201);
    const list = await api('GET', '/api/v1/notification-channels');
    expect((list.body.items as unknown[]).length).toBe(2);
    expect(JSON.stringify(list.body)).not.toContain(secret);
  });

  it('Send test reaches the receiver, signed', async () => {
    const list = await api('GET', '/api/v1/notification-channels');
    const hook = (list.body.items as { id: string; type: string }[]).find((c) => c.type === 'webhook')!;
    const result = await api('POST', `/api/v1/notification-channels/${hook.id}/test`);
    expect(result).toEqual({ status: 200, body: { ok: true } });
    expect(receiver.ofType('test')).toHaveLength(1);
    expect(receiver.badSignatures).toBe(0);
  });

  it('invalid_grant: exactly one grant.needs_reauth webhook and one email through the other server, in one refresh cycle', async () => {
    provider.disableAccount('alice@example.test');
    const queued = await app.services.mail.queue.enqueue({
      serverId,
      to: ['bob@example.test'],
      subject: 'held until re-authorized',
      text: 'hi',
    });
    const refreshErrorsBefore = provider.counts.refreshErrors;
    offsetMs += 3600_000; // the access token is due: the scheduler's next poll refreshes it
    await waitFor('the webhook', () => receiver.ofType('grant.needs_reauth').length > 0);
    await sink.waitFor(1);
    // The scheduler and the periodic checks look again, the outbox empties: nothing is sent twice.
    await afterInstancesLookAgain([app]);
    expect(await notifyEventsOfType(app.store, 'grant.needs_reauth')).toBe(1);
    expect(provider.counts.refreshErrors - refreshErrorsBefore).toBe(1);
    const [event] = receiver.ofType('grant.needs_reauth');
    expect(receiver.ofType('grant.needs_reauth')).toHaveLength(1);
    expect(Object.keys(event!).sort()).toEqual(['hint', 'id', 'message', 'occurredAt', 'target', 'type']);
    expect(event!.target).toBe(`smtp_server:${serverId}`);
    expect(event!.hint).toContain(`/admin/smtp-servers/${serverId}`);
    expect(receiver.badSignatures).toBe(0);
    expect(sink.messages).toHaveLength(1);
    expect(sink.messages[0]!.to).toEqual(['oncall@example.test']);
    expect(sink.messages[0]!.raw).toContain('grant.needs_reauth');
    expect(oauthSmtp.messages).toHaveLength(0);
    expect((await app.services.mail.queue.get(queued.id)).status).toBe('held');
  });

  it('every admin page shows one banner line naming the server, with a link to fix it', async () => {
    const admin = await app.browserSession('sysadmin');
    for (const page of ['/admin/api-keys', '/admin/notifications', '/admin/audit']) {
      const { text } = await admin.get(page);
      const banners = text.match(/<p class="banner[^"]*"[^>]*>.*?<\/p>/g) ?? [];
      expect(banners).toHaveLength(1);
      expect(banners[0]).toContain('oauth microsoft');
      expect(banners[0]).toContain(`href="/admin/smtp-servers/${serverId}"`);
    }
    const ja = await admin.get('/admin/audit', { headers: { 'accept-language': 'ja' } });
    expect(ja.text).toContain('再認可が必要です');
  });

  it('re-authorization: exactly one grant.recovered, and the held mail goes out', async () => {
    provider.enableAccount('alice@example.test');
    await authorizeThroughServices(app.services, serverId);
    await waitFor('grant.recovered', () => receiver.ofType('grant.recovered').length > 0);
    await oauthSmtp.waitFor(1);
    await sink.waitFor(2);
    await afterInstancesLookAgain([app]);
    expect(await notifyEventsOfType(app.store, 'grant.recovered')).toBe(1);
    expect(receiver.ofType('grant.recovered')).toHaveLength(1);
    expect(receiver.ofType('grant.needs_reauth')).toHaveLength(1);
    expect(receiver.ofType('server.paused')).toHaveLength(0);
    expect(sink.messages).toHaveLength(2);
    app.services.notify.attention.forget();
    const admin = await app.browserSession('sysadmin');
    const { text } = await admin.get('/admin/audit');
    expect(text).not.toMatch(/<p class="banner/);
  });

  it('refuses a webhook URL to a metadata address and a secret under 32 bytes; stores nothing', async () => {
    const before = ((await api('GET', '/api/v1/notification-channels')).body.items as unknown[]).length;
    const metadata = await api('POST', '/api/v1/notification-channels', {
      name: 'steal',
      type: 'webhook',
      url: 'http://169.254.169.254/latest/meta-data',
      secret,
    });
    expect(metadata.status).toBe(400);
    expect(JSON.stringify(metadata.body)).toContain('"field":"url"');
    const short = await api('POST', '/api/v1/notification-channels', {
      name: 'weak',
      type: 'webhook',
      url: receiver.url,
      secret: 'x'.repeat(31),
    });
    expect(short.status).toBe(400);
    expect(JSON.stringify(short.body)).toContain('"field":"secret"');
    const after = ((await api('GET', '/api/v1/notification-channels')).body.items as unknown[]).length;
    expect(after).toBe(before);
  });

  it('a client secret expiring within 14 days: one integration.secret_expiring, and a banner naming the integration', async () => {
    const inFiveDays = new Date(Date.now() + offsetMs + 5 * 86_400_000).toISOString().slice(0, 10);
    const integration = await app.services.oauthIntegrations.create(
      {
        name: 'expiring app',
        provider: 'microsoft',
        clientId: 'expiring-client',
        clientSecret: `s-${randomBytes(8).toString('hex')}`,
        tenant: provider.tenant,
        secretExpiresAt: inFiveDays,
      },
      TEST_ACTOR,
    );
    await app.services.notify.check();
    await app.services.notify.check();
    await waitFor('the event', () => receiver.ofType('integration.secret_expiring').length > 0);
    await afterInstancesLookAgain([app]);
    expect(await notifyEventsOfType(app.store, 'integration.secret_expiring')).toBe(1);
    const [event] = receiver.ofType('integration.secret_expiring');
    expect(receiver.ofType('integration.secret_expiring')).toHaveLength(1);
    expect(event!.target).toBe(`oauth_integration:${integration.id}`);
    app.services.notify.attention.forget();
    const admin = await app.browserSession('sysadmin');
    const { text } = await admin.get('/admin/api-keys');
    const banners = text.match(/<p class="banner[^"]*"[^>]*>.*?<\/p>/g) ?? [];
    expect(banners).toHaveLength(1);
    expect(banners[0]).toContain('expiring app');
    expect(banners[0]).toContain(`href="/admin/oauth-integrations/${integration.id}"`);
  });

  it('a message failing permanently: one message.failed, emailed through another healthy server', async () => {
    const rejecting = await startTestSmtp({
      starttls: false,
      onData: () => ({ code: 550, message: '5.1.1 no such user' }),
    });
    try {
      const server = await app.services.mail.servers.create(
        { name: 'rejecting', fromAddress: 'x@example.test', host: '127.0.0.1', port: rejecting.port, tls: false },
        { actor: TEST_ACTOR },
      );
      const { id } = await app.services.mail.queue.enqueue({
        serverId: server.id,
        to: ['nobody@example.test'],
        subject: 'bounce',
        text: 'x',
      });
      // The alert goes through a healthy server other than the rejecting one (here the default: the OAuth one).
      const alerts = () =>
        [...sink.messages, ...oauthSmtp.messages].filter((m) => m.raw.includes(`message.failed`) && m.raw.includes(id));
      await waitFor('message.failed', () => receiver.ofType('message.failed').length > 0);
      await waitFor('the alert email', () => alerts().length > 0);
      await afterInstancesLookAgain([app]);
      expect(await notifyEventsOfType(app.store, 'message.failed')).toBe(1);
      expect(receiver.ofType('message.failed').map((e) => e.target)).toEqual([`message:${id}`]);
      expect(alerts()).toHaveLength(1);
      expect(alerts()[0]!.to).toEqual(['oncall@example.test']);
    } finally {
      await rejecting.close();
    }
  });

  it('a receiver that redirects: the delivery fails, the signed body is not sent on to the other host', async () => {
    const other = await startWebhookReceiver(secret);
    const redirecting = http.createServer((_req, res) => res.writeHead(307, { location: other.url }).end());
    await new Promise<void>((resolve) => redirecting.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(redirecting.address() as AddressInfo).port}/hook`;
      const created = await api('POST', '/api/v1/notification-channels', {
        name: 'moved',
        type: 'webhook',
        url,
        secret,
      });
      const result = await api('POST', `/api/v1/notification-channels/${String(created.body.id)}/test`);
      expect(result.body.ok).toBe(false);
      expect(result.body.error).toMatch(/HTTP 307: redirects are not followed/);
      expect(other.requests).toBe(0);
      expect((await api('DELETE', `/api/v1/notification-channels/${String(created.body.id)}`)).status).toBe(204);
    } finally {
      redirecting.closeAllConnections();
      await new Promise<void>((resolve) => redirecting.close(() => resolve()));
      await other.close();
    }
  });

  it('no channel secret in any log line (canary)', () => {
    expect(logLines.length).toBeGreaterThan(0);
    expect(logLines.join('\n')).not.toContain(secret);
  });
});
