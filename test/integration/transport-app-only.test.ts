import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Services } from '../../src/services.js';
import type { GrantRecord } from '../../src/tokens/grants.js';
import { makeServiceAccountKey } from '../fakes/app-only.js';
import { createApiServer, startApiInstance, waitUntil, type ApiInstance } from '../fakes/api-setup.js';
import { startGmailFake } from '../fakes/gmail-api.js';
import { startGraphFake } from '../fakes/graph-api.js';
import type { MailApiFake } from '../fakes/mail-api.js';
import { providerEnv, TEST_ACTOR } from '../fakes/oauth-setup.js';
import { startFakeProvider, type FakeProvider } from '../fakes/oidc-provider.js';

/**
 * The app-only HTTP paths through the queue: Microsoft Graph with client credentials (scope
 * https://graph.microsoft.com/.default, the token names the application, not a user) and the Gmail API with a
 * service account (JWT bearer, sub = the mailbox, scope gmail.send). Both fakes vouch for each token by
 * introspection at the provider. A 429 storm is counted at the fake: every message arrives exactly once. The
 * instance's clock runs ahead on demand, so Retry-After passes without waiting.
 */

let clockOffsetMs = 0;
const now = () => Date.now() + clockOffsetMs;

const GRAPH_APP_SCOPE = 'https://graph.microsoft.com/.default';
const GMAIL_SEND = 'https://www.googleapis.com/auth/gmail.send';

describe('app-only Graph and Gmail API through the queue', () => {
  let microsoft: FakeProvider;
  let google: FakeProvider;
  let graph: MailApiFake;
  let gmail: MailApiFake;
  let instance: ApiInstance;
  let services: Services;
  let graphServerId: string;
  let gmailServerId: string;

  beforeAll(async () => {
    microsoft = await startFakeProvider({ kind: 'microsoft', accessTokenTtlSec: 300 });
    google = await startFakeProvider({ kind: 'google', accessTokenTtlSec: 300 });
    graph = await startGraphFake(microsoft);
    gmail = await startGmailFake(google);
    instance = await startApiInstance(
      {
        ...providerEnv(microsoft),
        MAILGATE_GOOGLE_ISSUER: google.issuer,
        MAILGATE_GRAPH_URL: graph.url,
        MAILGATE_GMAIL_API_URL: gmail.url,
        MAILGATE_QUEUE_MAX_ATTEMPTS: '2',
        // Ten of a mailbox's messages at once, so a storm's messages are not paced one by one.
        MAILGATE_QUEUE_CONCURRENCY: '40',
      },
      now,
    );
    services = instance.services;

    const clientId = `app-${randomBytes(4).toString('hex')}`;
    const clientSecret = `secret-${randomBytes(16).toString('hex')}`;
    await microsoft.registerClient({ clientId, clientSecret, redirectUris: [] });
    const msIntegration = await services.oauthIntegrations.create(
      {
        name: 'graph app-only',
        provider: 'microsoft',
        tenant: microsoft.tenant,
        clientId,
        grantType: 'client_credentials',
        clientSecret,
      },
      TEST_ACTOR,
    );
    graphServerId = await createApiServer(services, {
      protocol: 'graph',
      integrationId: msIntegration.id,
      mailbox: 'noreply@contoso.test',
    });

    const account = makeServiceAccountKey(google);
    await google.registerServiceAccount({
      clientEmail: account.clientEmail,
      clientId: account.clientId,
      publicKeyPem: account.publicKeyPem,
      delegatedScopes: [GMAIL_SEND],
    });
    const googleIntegration = await services.oauthIntegrations.create(
      {
        name: 'gmail service account',
        provider: 'google',
        grantType: 'service_account',
        serviceAccountKey: account.json,
      },
      TEST_ACTOR,
    );
    gmailServerId = await createApiServer(services, {
      protocol: 'gmail_api',
      integrationId: googleIntegration.id,
      mailbox: 'carol@example.test',
    });
  });
  afterEach(() => {
    graph.storm(null);
    gmail.storm(null);
  });
  afterAll(async () => {
    await instance?.close();
    await graph?.close();
    await gmail?.close();
    await microsoft?.close();
    await google?.close();
  });

  const statusOf = async (id: string) => (await services.mail.queue.get(id)).status;
  const enqueue = async (serverId: string, subject: string) =>
    (await services.mail.queue.enqueue({ serverId, to: ['dave@example.test'], subject, text: subject })).id;
  const subjectsAt = (fake: MailApiFake, prefix: string) =>
    fake.messages.map((m) => /^Subject: (.*)$/m.exec(m.mime)![1]!).filter((s) => s.startsWith(prefix));

  async function grantOf(serverId: string): Promise<GrantRecord> {
    const doc = await services.tokens.get(serverId);
    expect(doc).not.toBeNull();
    return doc!.value;
  }

  /** 20 messages into a storm of 429s lasting three Retry-After windows, then calm: each arrives once. */
  async function survivesStorm(fake: MailApiFake, serverId: string, mailbox: string, prefix: string) {
    fake.storm({ status: 429, retryAfterSec: 60, code: fake === graph ? 'ApplicationThrottled' : 'rateLimitExceeded' });
    const ids = await Promise.all(Array.from({ length: 20 }, (_, i) => enqueue(serverId, `${prefix} ${i}`)));
    await waitUntil('all deferred', async () => (await Promise.all(ids.map(statusOf))).every((s) => s === 'deferred'));
    const throttled = () => fake.requests.filter((r) => r.mailbox === mailbox && r.status === 429).length;
    const first = throttled();
    // The first 429 slows the mailbox: the others wait without calling (at most one request per gate slot).
    expect(first).toBeGreaterThan(0);
    expect(first).toBeLessThanOrEqual(4);
    const view = await services.mail.queue.get(ids[0]!);
    expect(view.lastError?.code).toBe('api_throttled');
    expect(view.attempts).toBe(0);
    // Every retry is recorded before the clock moves again: a jump past in-flight leases is no real clock's doing.
    const allWaiting = async () =>
      (await Promise.all(ids.map((id) => services.mail.queue.get(id)))).every(
        (v) => v.status === 'deferred' && Date.parse(v.nextAttemptAt!) > now() + 30_000,
      );
    for (let i = 0; i < 3; i++) {
      clockOffsetMs += 61_000;
      await waitUntil('retried during the storm', () => throttled() > first + i);
      await waitUntil('deferred again', allWaiting);
    }
    expect(subjectsAt(fake, prefix)).toHaveLength(0);
    fake.storm(null);
    clockOffsetMs += 61_000;
    await waitUntil('all sent', async () => (await Promise.all(ids.map(statusOf))).every((s) => s === 'sent'));
    const arrived = subjectsAt(fake, prefix);
    expect(arrived).toHaveLength(20);
    expect(new Set(arrived).size).toBe(20);
    // Rate limits burn no attempts (MAILGATE_QUEUE_MAX_ATTEMPTS is 2): one successful attempt each.
    for (const id of ids) expect((await services.mail.queue.get(id)).attempts).toBe(1);
  }

  it('Graph app-only: a client-credentials token for Graph .default sends as the server mailbox', async () => {
    const before = microsoft.counts.clientCredentials;
    const id = await enqueue(graphServerId, 'graph app-only hello');
    await waitUntil('sent', async () => (await statusOf(id)) === 'sent');
    const got = graph.messages.at(-1)!;
    expect(got).toMatchObject({ mailbox: 'noreply@contoso.test', appOnly: true });
    expect(got.mime).toMatch(/^From: .*noreply@contoso\.test/m);
    expect(microsoft.counts.clientCredentials).toBeGreaterThan(before);
    const grant = await grantOf(graphServerId);
    expect(grant.appOnly).toEqual({ scope: GRAPH_APP_SCOPE, protocol: 'graph' });
    expect(grant.tokens.refreshToken).toBeNull();
  });

  it('Graph app-only: Test connection obtains a token and says what Mail.Send cannot check', async () => {
    const result = await services.mail.test(graphServerId);
    expect(result.ok).toBe(true);
    const transcript = result.transcript.join('\n');
    expect(transcript).toContain('access token obtained');
    expect(transcript).toContain('not checked: the mailbox itself');
  });

  it('Graph app-only survives a 429 storm without losing or duplicating a message', async () => {
    await survivesStorm(graph, graphServerId, 'noreply@contoso.test', 'graph storm');
  });

  it('Gmail API with a service account: JWT bearer with sub = the mailbox and scope gmail.send', async () => {
    const id = await enqueue(gmailServerId, 'gmail service account hello');
    await waitUntil('sent', async () => (await statusOf(id)) === 'sent');
    const got = gmail.messages.at(-1)!;
    expect(got.mailbox).toBe('carol@example.test');
    expect(got.appOnly).toBe(false);
    // The token may have been obtained ahead of this send (the scheduler renews app-only tokens early): what
    // matters is that a JWT bearer grant, and nothing else, gave it.
    expect(google.counts.jwtBearer).toBeGreaterThan(0);
    const grant = await grantOf(gmailServerId);
    expect(grant.appOnly).toEqual({ scope: GMAIL_SEND, protocol: 'gmail_api' });
  });

  it('Gmail API with a service account survives a 429 storm without losing or duplicating a message', async () => {
    await survivesStorm(gmail, gmailServerId, 'carol@example.test', 'gmail storm');
  });

  it('after the storms both app-only grants are active with no error recorded', async () => {
    for (const id of [graphServerId, gmailServerId]) {
      const doc = await services.tokens.get(id);
      expect(doc?.value).toMatchObject({ status: 'active', lastError: null });
    }
  });
});
