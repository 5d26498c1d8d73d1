import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Services } from '../../src/services.js';
import { nextPacificMidnight } from '../../src/mail/transports/api-answer.js';
import { createApiServer, normalizedMime, startApiInstance, waitUntil, type ApiInstance } from '../fakes/api-setup.js';
import { startGmailFake } from '../fakes/gmail-api.js';
import type { MailApiFake } from '../fakes/mail-api.js';
import { startOAuthSmtp, type OAuthSmtp } from '../fakes/oauth-flow.js';
import { authorizeThroughServices, createOAuthServer, providerEnv, TEST_ACTOR } from '../fakes/oauth-setup.js';
import { startFakeProvider, type FakeProvider } from '../fakes/oidc-provider.js';

/**
 * Gmail API delivery, delegated, through the queue: a local Google-like provider, a Gmail API fake that checks
 * tokens by introspection (scope gmail.send), and an XOAUTH2 SMTP server for the same mailbox to compare with.
 */

let clockOffsetMs = 0;
const now = () => Date.now() + clockOffsetMs;

describe('Gmail API transport', () => {
  let provider: FakeProvider;
  let gmail: MailApiFake;
  let smtp: OAuthSmtp;
  let instance: ApiInstance;
  let services: Services;
  let smtpServerId: string;
  let serverId: string;

  beforeAll(async () => {
    provider = await startFakeProvider({ kind: 'google', accessTokenTtlSec: 300 });
    gmail = await startGmailFake(provider);
    smtp = await startOAuthSmtp(provider);
    instance = await startApiInstance(
      { ...providerEnv(provider), MAILGATE_GMAIL_API_URL: gmail.url, MAILGATE_QUEUE_MAX_ATTEMPTS: '2' },
      now,
    );
    services = instance.services;
    const created = await createOAuthServer(services, provider, smtp.port);
    smtpServerId = created.serverId;
    await authorizeThroughServices(services, smtpServerId);
    serverId = await createApiServer(services, {
      protocol: 'gmail_api',
      integrationId: created.integrationId,
      mailbox: 'alice@example.test',
    });
    await authorizeThroughServices(services, serverId);
  });
  afterEach(() => gmail.storm(null));
  afterAll(async () => {
    await instance?.close();
    await smtp?.close();
    await gmail?.close();
    await provider?.close();
  });

  const statusOf = async (id: string) => (await services.mail.queue.get(id)).status;
  const enqueue = async (subject: string) =>
    (await services.mail.queue.enqueue({ serverId, to: ['carol@example.test'], subject, text: subject })).id;

  it('Authorize for a Gmail API server asks for gmail.send beside the integration scopes', async () => {
    const { url } = await services.authorize.begin({ serverId, sessionId: 's-scope', actor: TEST_ACTOR });
    const scope = new URL(url).searchParams.get('scope')!.split(' ');
    expect(scope).toContain('https://www.googleapis.com/auth/gmail.send');
    expect(scope).toContain('https://mail.google.com/');
  });

  it('sends the same MIME message as XOAUTH2 SMTP', async () => {
    const input = {
      fromName: 'Same Sender',
      to: ['carol@example.test'],
      bcc: ['erin@example.test'],
      subject: 'same message',
      text: 'one body, 日本語も',
    };
    const a = await services.mail.queue.enqueue({ ...input, serverId: smtpServerId });
    const b = await services.mail.queue.enqueue({ ...input, serverId });
    await waitUntil('both sent', async () => (await statusOf(a.id)) === 'sent' && (await statusOf(b.id)) === 'sent');
    const viaApi = gmail.messages.find((m) => m.mime.includes('same message'))!.mime;
    expect(normalizedMime(viaApi)).toBe(normalizedMime(smtp.messages.at(-1)!.raw));
    expect(viaApi).toMatch(/^Bcc: erin@example\.test/m);
    expect((await services.mail.queue.get(b.id)).recipients.map((r) => r.status)).toEqual(['accepted', 'accepted']);
  });

  it('Test connection reads the profile when the grant allows it (the integration also asks for mail.google.com)', async () => {
    const result = await services.mail.test(serverId);
    expect(result.ok).toBe(true);
    const transcript = result.transcript.join('\n');
    expect(transcript).toContain('checked: the mailbox profile could be read');
    expect(transcript).toContain('not checked: sending');
  });

  it('rateLimitExceeded storms lose and duplicate nothing; attempts are not burned', async () => {
    gmail.storm({ status: 429, code: 'rateLimitExceeded' });
    const before = gmail.messages.length;
    const ids = await Promise.all(Array.from({ length: 10 }, (_, i) => enqueue(`storm ${i}`)));
    await waitUntil('deferred', async () => (await Promise.all(ids.map(statusOf))).every((s) => s === 'deferred'));
    const view = await services.mail.queue.get(ids[0]!);
    expect(view.lastError?.code).toBe('api_throttled');
    expect(view.attempts).toBe(0);
    clockOffsetMs += 31_000;
    await waitUntil('retried during the storm', () => gmail.requests.filter((r) => r.status === 429).length > 1);
    // Every retry recorded before the clock moves again (a jump past in-flight leases is no real clock's doing).
    await waitUntil('deferred again', async () =>
      (await Promise.all(ids.map((id) => services.mail.queue.get(id)))).every(
        (v) => v.status === 'deferred' && Date.parse(v.nextAttemptAt!) > now() + 20_000,
      ),
    );
    gmail.storm(null);
    clockOffsetMs += 31_000;
    await waitUntil('sent', async () => (await Promise.all(ids.map(statusOf))).every((s) => s === 'sent'));
    const subjects = gmail.messages.slice(before).map((m) => /^Subject: (.*)$/m.exec(m.mime)![1]!);
    expect(subjects.filter((s) => s.startsWith('storm ')).sort()).toEqual(
      Array.from({ length: 10 }, (_, i) => `storm ${i}`).sort(),
    );
  });

  it('dailyLimitExceeded defers the mailbox until the next day window', async () => {
    gmail.inject({ status: 403, code: 'dailyLimitExceeded' });
    const id = await enqueue('daily');
    await waitUntil('deferred', async () => (await statusOf(id)) === 'deferred');
    const view = await services.mail.queue.get(id);
    expect(view.lastError?.code).toBe('api_daily_limit');
    const next = Date.parse(view.nextAttemptAt!);
    expect(Math.abs(next - nextPacificMidnight(now()))).toBeLessThan(60_000);
    clockOffsetMs = next - Date.now() + 1000;
    await waitUntil('sent the next day', async () => (await statusOf(id)) === 'sent');
  });
});
