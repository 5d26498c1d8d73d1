import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { afterInstancesLookAgain, notifyEventsOfType } from '../fakes/look-again.js';
import { startOAuthSmtp, type OAuthSmtp } from '../fakes/oauth-flow.js';
import { authorizeThroughServices, createOAuthServer, providerEnv, TEST_ACTOR } from '../fakes/oauth-setup.js';
import { startFakeProvider, type FakeProvider } from '../fakes/oidc-provider.js';
import { startTestSmtp } from '../fakes/smtp-server.js';
import { startWebhookReceiver, waitFor, type WebhookReceiver } from '../fakes/webhook-receiver.js';
import { GRANTS, type GrantRecord } from '../../src/tokens/grants.js';

/**
 * Delivery that outlives a broken receiver (500s, then no answer, for an hour of the injected clock): retried,
 * nothing lost, the channel shown failing meanwhile. And the two timers of the token scheduler: keep-alive (an
 * idle grant is refreshed within a day) and grant.refresh_failing after an hour of temporary failures.
 */

const HOUR = 3600_000;
let offsetMs = 0;
let provider: FakeProvider;
let oauthSmtp: OAuthSmtp;
let receiver: WebhookReceiver;
let app: TestApp;
let serverId: string;
let channelId: string;
const secret = randomBytes(40).toString('hex');

beforeAll(async () => {
  // Access tokens live two days: only the keep-alive makes an idle grant refresh within a day.
  provider = await startFakeProvider({ kind: 'google', accessTokenTtlSec: 2 * 86_400 });
  oauthSmtp = await startOAuthSmtp(provider);
  receiver = await startWebhookReceiver(secret);
  app = await startTestApp({
    store: 'file',
    workers: true,
    clock: () => Date.now() + offsetMs,
    env: providerEnv(provider),
    seams: {
      oauthTuning: { requestTimeoutSec: 1, backoffBaseMs: 100, backoffMaxMs: 300, schedulerPollMs: 50 },
      notifyTuning: { pollMs: 30, webhookTimeoutMs: 200, backoffBaseMs: 40, backoffCapMs: 120, watchMs: 60_000 },
    },
  });
  ({ serverId } = await createOAuthServer(app.services, provider, oauthSmtp.port));
  await authorizeThroughServices(app.services, serverId);
  const channel = await app.services.notify.channels.create(
    { name: 'hook', type: 'webhook', url: receiver.url, secret, events: undefined },
    TEST_ACTOR,
  );
  channelId = channel.id;
}, 60_000);

afterAll(async () => {
  await app?.close();
  await receiver?.close();
  await oauthSmtp?.close();
  await provider?.close();
});

const grant = async () => (await app.store.get<GrantRecord>(GRANTS, serverId))!.value;

describe('durable webhook delivery', () => {
  it('a receiver answering 500, then hanging, for an hour: retried, shown failing, delivered once it answers', async () => {
    receiver.mode = '500';
    await app.services.notify.notifier.emitOnce('probe:1', {
      type: 'queue.backlog',
      target: 'queue:mail',
      message: 'probe',
      hint: 'none',
    });
    await waitFor('three failed attempts', () => receiver.requests >= 3);
    const failing = await app.services.notify.channels.get(channelId);
    expect(failing.status).toBe('failing');
    expect(failing.lastError).toBe('HTTP 500');
    receiver.mode = 'hang';
    const before = receiver.requests;
    for (let minutes = 0; minutes < 60; minutes += 10) {
      offsetMs += 10 * 60_000;
      await waitFor('another attempt', () => receiver.requests > before + minutes / 10);
    }
    const hanging = await app.services.notify.channels.get(channelId);
    expect(hanging.status).toBe('failing');
    expect(hanging.lastError).toMatch(/no answer within 200 ms/);
    expect(receiver.accepted).toHaveLength(0);
    const admin = await app.browserSession('sysadmin');
    const page = await admin.get('/admin/notifications');
    expect(page.text).toContain('channel-status">failing');
    receiver.mode = 'ok';
    await waitFor('the delivery', () => receiver.accepted.length > 0);
    await afterInstancesLookAgain([app]);
    expect(receiver.ofType('queue.backlog')).toHaveLength(1);
    expect((await app.services.notify.channels.get(channelId)).status).toBe('ok');
    expect((await app.services.notify.worker.pendingByChannel()).size).toBe(0);
    const metrics = await app.services.metrics.registry.getSingleMetricAsString(
      'mailgate_notification_deliveries_total',
    );
    expect(metrics).toMatch(new RegExp(`channel="${channelId}",type="webhook",result="failed"} [1-9]`));
    expect(metrics).toMatch(new RegExp(`channel="${channelId}",type="webhook",result="delivered"} 1`));
  });
});

describe('keep-alive and refresh_failing', () => {
  it('an idle grant whose token lives two days is refreshed within a day', async () => {
    const before = provider.counts.refresh;
    const obtainedAt = (await grant()).tokens.obtainedAt;
    offsetMs += 24 * HOUR + 60_000;
    await waitFor('the keep-alive refresh', () => provider.counts.refresh > before);
    await waitFor('the stored token', async () => (await grant()).tokens.obtainedAt > obtainedAt);
    expect(provider.counts.refresh - before).toBe(1);
  });

  it('temporary failures for more than an hour: one grant.refresh_failing, then one grant.recovered', async () => {
    receiver.accepted.length = 0;
    provider.setTokenFault('503');
    offsetMs += 24 * HOUR + 60_000;
    await waitFor('a failed refresh', async () => (await grant()).failures > 0);
    expect(receiver.ofType('grant.refresh_failing')).toHaveLength(0);
    offsetMs += 30 * 60_000;
    await waitFor('more failures', async () => (await grant()).failures > 1);
    await afterInstancesLookAgain([app]);
    expect(await notifyEventsOfType(app.store, 'grant.refresh_failing')).toBe(0);
    expect(receiver.ofType('grant.refresh_failing')).toHaveLength(0);
    offsetMs += 31 * 60_000;
    await waitFor('grant.refresh_failing', () => receiver.ofType('grant.refresh_failing').length > 0);
    offsetMs += 10 * 60_000;
    const failures = (await grant()).failures;
    await waitFor('yet more failures', async () => (await grant()).failures > failures);
    provider.setTokenFault('none');
    offsetMs += 10 * 60_000;
    await waitFor('grant.recovered', () => receiver.ofType('grant.recovered').length > 0);
    await afterInstancesLookAgain([app]);
    expect(await notifyEventsOfType(app.store, 'grant.refresh_failing')).toBe(1);
    expect(await notifyEventsOfType(app.store, 'grant.recovered')).toBe(1);
    expect(receiver.ofType('grant.refresh_failing')).toHaveLength(1);
    expect(receiver.ofType('grant.recovered')).toHaveLength(1);
    expect(receiver.ofType('grant.needs_reauth')).toHaveLength(0);
    await app.services.notify.check();
    const gauge = await app.services.metrics.registry.getSingleMetricAsString('mailgate_oauth_grants');
    expect(gauge).toContain('mailgate_oauth_grants{state="active"} 1');
  });
});

describe('server.paused and server.resumed', () => {
  it('a rejected password pauses the server (one event); a new password resumes it (one event)', async () => {
    const smtp = await startTestSmtp({
      starttls: false,
      allowInsecureAuth: true,
      auth: { user: 'app', pass: 'right' },
    });
    try {
      const server = await app.services.mail.servers.create(
        {
          name: 'basic',
          fromAddress: 'app@example.test',
          host: '127.0.0.1',
          port: smtp.port,
          tls: false,
          authMethod: 'basic',
          username: 'app',
          password: 'wrong',
        },
        { actor: TEST_ACTOR },
      );
      await app.services.mail.queue.enqueue({ serverId: server.id, to: ['b@example.test'], subject: 's', text: 'x' });
      await waitFor('server.paused', () => receiver.ofType('server.paused').length > 0);
      expect(receiver.ofType('server.paused')[0]!.target).toBe(`smtp_server:${server.id}`);
      await app.services.mail.servers.update(
        server.id,
        { password: 'right', changePassword: true },
        { actor: TEST_ACTOR },
      );
      await waitFor('server.resumed', () => receiver.ofType('server.resumed').length > 0);
      await smtp.waitFor(1);
      await afterInstancesLookAgain([app]);
      expect(await notifyEventsOfType(app.store, 'server.paused')).toBe(1);
      expect(await notifyEventsOfType(app.store, 'server.resumed')).toBe(1);
      expect(receiver.ofType('server.paused')).toHaveLength(1);
      expect(receiver.ofType('server.resumed')).toHaveLength(1);
    } finally {
      await smtp.close();
    }
  });
});
