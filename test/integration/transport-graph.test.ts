import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Services } from '../../src/services.js';
import { createApiServer, normalizedMime, startApiInstance, waitUntil, type ApiInstance } from '../fakes/api-setup.js';
import { startGraphFake } from '../fakes/graph-api.js';
import type { MailApiFake } from '../fakes/mail-api.js';
import { startOAuthSmtp, type OAuthSmtp } from '../fakes/oauth-flow.js';
import { authorizeThroughServices, createOAuthServer, providerEnv, TEST_ACTOR } from '../fakes/oauth-setup.js';
import { startFakeProvider, type FakeProvider } from '../fakes/oidc-provider.js';

/**
 * Microsoft Graph delivery, delegated, through the queue: a local OpenID provider, a Graph fake that checks
 * every token by introspection (active, the mailbox's own, scope Mail.Send), and an XOAUTH2 SMTP server for the
 * same mailbox to compare the MIME with. The instance's clock runs ahead of the system clock on demand, so a
 * provider's Retry-After passes without waiting for it.
 */

let clockOffsetMs = 0;
const now = () => Date.now() + clockOffsetMs;

describe('Microsoft Graph transport', () => {
  let provider: FakeProvider;
  let graph: MailApiFake;
  let smtp: OAuthSmtp;
  let instance: ApiInstance;
  let services: Services;
  let smtpServerId: string;
  let integrationId: string;
  let aliceId: string;
  let bobId: string;

  beforeAll(async () => {
    provider = await startFakeProvider({ kind: 'microsoft', accessTokenTtlSec: 300 });
    graph = await startGraphFake(provider);
    smtp = await startOAuthSmtp(provider);
    instance = await startApiInstance(
      // Forty workers give a mailbox ten at once (its share is a quarter): the Graph limit of four concurrent
      // requests per mailbox is then what holds them back, and a storm's messages are not paced one by one.
      {
        ...providerEnv(provider),
        MAILGATE_GRAPH_URL: graph.url,
        MAILGATE_QUEUE_MAX_ATTEMPTS: '2',
        MAILGATE_QUEUE_CONCURRENCY: '40',
      },
      now,
    );
    services = instance.services;
    const created = await createOAuthServer(services, provider, smtp.port);
    smtpServerId = created.serverId;
    integrationId = created.integrationId;
    await authorizeThroughServices(services, smtpServerId);
    aliceId = await createApiServer(services, { protocol: 'graph', integrationId, mailbox: 'alice@example.test' });
    await authorizeThroughServices(services, aliceId, 'alice@example.test');
    bobId = await createApiServer(services, { protocol: 'graph', integrationId, mailbox: 'bob@example.test' });
    await authorizeThroughServices(services, bobId, 'bob@example.test');
  });
  afterEach(() => {
    graph.storm(null);
    graph.delayMs = 0;
  });
  afterAll(async () => {
    await instance?.close();
    await smtp?.close();
    await graph?.close();
    await provider?.close();
  });

  const statusOf = async (id: string) => (await services.mail.queue.get(id)).status;
  const enqueue = async (serverId: string, subject: string, extra: Record<string, unknown> = {}) =>
    (await services.mail.queue.enqueue({ serverId, to: ['carol@example.test'], subject, text: subject, ...extra })).id;

  it('Authorize for a Graph server asks for Mail.Send (the fake accepted the token by introspection)', async () => {
    const { url } = await services.authorize.begin({ serverId: aliceId, sessionId: 's-scope', actor: TEST_ACTOR });
    const scope = new URL(url).searchParams.get('scope')!.split(' ');
    expect(scope).toContain('https://graph.microsoft.com/Mail.Send');
    expect(scope).toContain('offline_access');
    // One resource per Microsoft token: the integration's SMTP scope is not mixed in.
    expect(scope).not.toContain('https://outlook.office.com/SMTP.Send');
  });

  it('sends the same MIME message as XOAUTH2 SMTP, with Bcc kept for Graph to deliver', async () => {
    const input = {
      fromName: 'Same Sender',
      to: ['carol@example.test'],
      cc: ['dave@example.test'],
      bcc: ['erin@example.test'],
      subject: 'same message',
      text: 'Grüße, one body for every transport',
      html: '<p>Grüße, <b>one</b> body for every transport</p>',
    };
    const viaSmtp = await services.mail.queue.enqueue({ ...input, serverId: smtpServerId });
    const viaGraph = await services.mail.queue.enqueue({ ...input, serverId: aliceId });
    await waitUntil(
      'both sent',
      async () => (await statusOf(viaSmtp.id)) === 'sent' && (await statusOf(viaGraph.id)) === 'sent',
    );
    const smtpMime = smtp.messages.at(-1)!.raw;
    const graphMime = graph.messages.find((m) => m.mime.includes('same message'))!.mime;
    expect(normalizedMime(graphMime)).toBe(normalizedMime(smtpMime));
    expect(graphMime).toMatch(/^Bcc: erin@example\.test/m);
    expect(smtpMime).not.toMatch(/^Bcc:/m);
    const view = await services.mail.queue.get(viaGraph.id);
    expect(view.recipients.map((r) => r.status)).toEqual(['accepted', 'accepted', 'accepted']);
  });

  it('Test connection obtains a token and says that Mail.Send alone cannot read the mailbox', async () => {
    const result = await services.mail.test(aliceId);
    expect(result.ok).toBe(true);
    const transcript = result.transcript.join('\n');
    expect(transcript).toContain('access token obtained');
    expect(transcript).toContain('not checked: the mailbox itself');
    expect(transcript).toContain('Mail.Send alone cannot');
    expect(transcript).toContain('not checked: sending');
  });

  it('runs at most 4 requests at once per mailbox', async () => {
    graph.delayMs = 300;
    const ids = await Promise.all(Array.from({ length: 12 }, (_, i) => enqueue(aliceId, `concurrent ${i}`)));
    await waitUntil('all sent', async () => (await Promise.all(ids.map(statusOf))).every((s) => s === 'sent'));
    const max = graph.maxConcurrent.get('alice@example.test')!;
    expect(max).toBeLessThanOrEqual(4);
    expect(max).toBeGreaterThanOrEqual(2);
  });

  it('a 429 storm with Retry-After slows that mailbox only, and loses or duplicates nothing', async () => {
    graph.storm({ status: 429, retryAfterSec: 60, code: 'ApplicationThrottled' }, 'alice@example.test');
    const before = graph.messages.length;
    const ids = await Promise.all(Array.from({ length: 20 }, (_, i) => enqueue(aliceId, `storm ${i}`)));
    await waitUntil('all deferred', async () => (await Promise.all(ids.map(statusOf))).every((s) => s === 'deferred'));
    const throttledRequests = graph.requests.filter((r) => r.status === 429).length;
    // The first 429 slows the mailbox: the other messages wait without calling Graph (at most one request per slot).
    expect(throttledRequests).toBeLessThanOrEqual(4);
    const view = await services.mail.queue.get(ids[0]!);
    expect(view.lastError?.code).toBe('api_throttled');
    expect(view.attempts).toBe(0);
    expect(Date.parse(view.nextAttemptAt!)).toBeGreaterThan(now() + 50_000);
    // Another mailbox is not slowed.
    const other = await enqueue(bobId, 'bob during the storm');
    await waitUntil('bob sent', async () => (await statusOf(other)) === 'sent');
    // Three storm windows pass: still nothing lost (MAILGATE_QUEUE_MAX_ATTEMPTS is 2; rate limits do not count).
    // The clock moves only when every message's retry is recorded: a jump past in-flight leases would let a
    // second worker claim a message that is still being sent, which no real clock does.
    const allWaiting = async () =>
      (await Promise.all(ids.map((id) => services.mail.queue.get(id)))).every(
        (v) => v.status === 'deferred' && Date.parse(v.nextAttemptAt!) > now() + 30_000,
      );
    for (let i = 0; i < 3; i++) {
      clockOffsetMs += 61_000;
      await waitUntil('retried', () => graph.requests.filter((r) => r.status === 429).length > throttledRequests + i);
      await waitUntil('deferred again', allWaiting);
    }
    graph.storm(null);
    clockOffsetMs += 61_000;
    await waitUntil('all sent', async () => (await Promise.all(ids.map(statusOf))).every((s) => s === 'sent'));
    const subjects = graph.messages.slice(before).map((m) => /^Subject: (.*)$/m.exec(m.mime)![1]!);
    const storm = subjects.filter((s) => s.startsWith('storm '));
    expect(storm).toHaveLength(20);
    expect(new Set(storm).size).toBe(20);
  });

  it('a refused token is refreshed once and the message still goes out', async () => {
    // The storm test moved the clock four minutes on: the scheduler's refreshes of tokens now near their expiry
    // happen here, before counting, instead of whenever its next background pass comes.
    await services.tokenScheduler.stop();
    await services.tokenScheduler.runDue();
    await services.tokenScheduler.start();
    const refreshes = provider.counts.refresh;
    graph.inject({ status: 401, code: 'InvalidAuthenticationToken' });
    const id = await enqueue(aliceId, 'after 401');
    await waitUntil('sent', async () => (await statusOf(id)) === 'sent');
    expect(provider.counts.refresh).toBe(refreshes + 1);
    expect((await services.mail.queue.get(id)).attempts).toBe(1);
  });

  it('5xx is retried; 413 fails at once with a clear reason', async () => {
    graph.inject({ status: 503, retryAfterSec: 0 });
    const retried = await enqueue(aliceId, 'after 503');
    await waitUntil('sent', async () => (await statusOf(retried)) === 'sent');
    expect((await services.mail.queue.get(retried)).attempts).toBe(2);
    graph.inject({ status: 413, code: 'ErrorMessageSizeExceeded' });
    const big = await enqueue(aliceId, 'too big');
    await waitUntil('failed', async () => (await statusOf(big)) === 'failed');
    expect((await services.mail.queue.get(big)).lastError?.code).toBe('api_message_too_large');
  });

  it('a MIME message over 3 MB is refused for Graph before any request, with the reason', async () => {
    const requests = graph.requests.length;
    // 900 000 two-byte characters in text and html: over 3 MB once encoded, under MAILGATE_MAX_MESSAGE_BYTES.
    const body = 'é'.repeat(900_000);
    const { id } = await services.mail.queue.enqueue({
      serverId: aliceId,
      to: ['carol@example.test'],
      subject: 'large',
      text: body,
      html: `<p>${body}</p>`,
    });
    await waitUntil('failed', async () => (await statusOf(id)) === 'failed');
    const view = await services.mail.queue.get(id);
    expect(view.lastError?.code).toBe('api_message_too_large');
    expect(view.lastError?.message).toMatch(/at most 3145728 bytes/);
    expect(graph.requests.length).toBe(requests);
  });

  it('sending as a shared mailbox without the right pauses the server and names the missing right', async () => {
    const sharedId = await createApiServer(services, {
      protocol: 'graph',
      integrationId,
      mailbox: 'alice@example.test',
      fromAddress: 'shared@example.test',
    });
    await authorizeThroughServices(services, sharedId, 'alice@example.test');
    const id = await enqueue(sharedId, 'from the shared mailbox');
    await waitUntil('held', async () => (await statusOf(id)) === 'held');
    const pause = await services.mail.servers.pauseOf(sharedId);
    expect(pause?.code).toBe('send_as_denied');
    expect(pause?.reason).toContain('Send As');
    graph.sendAs.set('alice@example.test', ['shared@example.test']);
    await services.mail.queue.resumeServer(sharedId);
    await waitUntil('sent', async () => (await statusOf(id)) === 'sent');
    expect(graph.messages.at(-1)!.mime).toMatch(/^From: .*<shared@example\.test>/m);
  });
});
