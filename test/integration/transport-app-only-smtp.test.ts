import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAppOnlySmtp, type AppOnlySmtp } from '../fakes/app-only.js';
import { startApiInstance, waitUntil, type ApiInstance } from '../fakes/api-setup.js';
import { providerEnv, TEST_ACTOR } from '../fakes/oauth-setup.js';
import { startFakeProvider, type FakeProvider } from '../fakes/oidc-provider.js';

/**
 * App-only SMTP (client credentials, scope https://outlook.office365.com/.default, XOAUTH2 as the mailbox)
 * through the queue while the provider's token endpoint answers 429 with Retry-After: no token, so no
 * delivery, then the storm ends and every message arrives exactly once, counted at the SMTP fake. The
 * instance's clock runs ahead on demand, so the waits pass without sleeping through them.
 */

let clockOffsetMs = 0;
const now = () => Date.now() + clockOffsetMs;
const SMTP_SCOPE = 'https://outlook.office365.com/.default';

describe('app-only SMTP through a token endpoint 429 storm', () => {
  let provider: FakeProvider;
  let exchange: AppOnlySmtp;
  let instance: ApiInstance;
  let serverId: string;
  let clientId: string;

  beforeAll(async () => {
    provider = await startFakeProvider({ kind: 'microsoft', accessTokenTtlSec: 300 });
    clientId = `app-${randomBytes(4).toString('hex')}`;
    exchange = await startAppOnlySmtp(provider, {
      scope: SMTP_SCOPE,
      accept: (info, user) => info.client_id === clientId && user === 'shared@contoso.test',
    });
    // Leases longer than any clock jump: a jump past an in-flight lease would let a second worker claim a
    // message that is still being sent, which no real clock does. Forty workers put all ten messages in flight
    // at once (a mailbox's share is a quarter), so each meets the storm without waiting for the pacing.
    instance = await startApiInstance(
      {
        ...providerEnv(provider),
        MAILGATE_QUEUE_MAX_ATTEMPTS: '2',
        MAILGATE_QUEUE_LEASE_MS: '600000',
        MAILGATE_QUEUE_CONCURRENCY: '40',
      },
      now,
    );
    const clientSecret = `secret-${randomBytes(16).toString('hex')}`;
    await provider.registerClient({ clientId, clientSecret, redirectUris: [] });
    const integration = await instance.services.oauthIntegrations.create(
      {
        name: 'smtp app-only',
        provider: 'microsoft',
        tenant: provider.tenant,
        clientId,
        grantType: 'client_credentials',
        clientSecret,
      },
      TEST_ACTOR,
    );
    const server = await instance.services.mail.servers.create(
      {
        name: 'exchange app-only',
        fromAddress: 'shared@contoso.test',
        host: '127.0.0.1',
        port: exchange.port,
        protocol: 'smtp',
        authMethod: 'oauth2',
        oauthIntegrationId: integration.id,
        username: 'shared@contoso.test',
        timeoutMs: 5000,
      },
      { actor: TEST_ACTOR },
    );
    serverId = server.id;
  });
  afterAll(async () => {
    provider?.setTokenFault('none');
    await instance?.close();
    await exchange?.close();
    await provider?.close();
  });

  it('loses and duplicates nothing, and sends once the provider answers again', async () => {
    const { services } = instance;
    provider.setTokenFault('429');
    const ids = await Promise.all(
      Array.from(
        { length: 10 },
        async (_, i) =>
          (
            await services.mail.queue.enqueue({
              serverId,
              to: ['bob@example.test'],
              subject: `smtp storm ${i}`,
              text: `message ${i}`,
            })
          ).id,
      ),
    );
    const views = () => Promise.all(ids.map((id) => services.mail.queue.get(id)));
    await waitUntil('every message waiting', async () =>
      (await views()).every((v) => v.status !== 'queued' && v.status !== 'sending' && v.lastError !== null),
    );
    const refused = provider.edgeTokenRequests;
    expect(refused).toBeGreaterThan(0);
    // Three more storm windows: still nothing sent, nothing failed.
    for (let i = 0; i < 3; i++) {
      clockOffsetMs += 61_000;
      await waitUntil('asked again', () => provider.edgeTokenRequests > refused + i);
      await waitUntil('waiting again', async () =>
        (await views()).every((v) => v.status !== 'queued' && v.status !== 'sending'),
      );
      expect((await views()).filter((v) => v.status === 'failed' || v.status === 'sent')).toEqual([]);
    }
    expect(exchange.messages).toHaveLength(0);
    // No token is no message's fault: the storm burned no attempts (MAILGATE_QUEUE_MAX_ATTEMPTS is 2).
    expect((await views()).map((v) => v.lastError?.code)).toEqual(Array(10).fill('oauth_token_unavailable'));
    expect((await views()).map((v) => v.attempts)).toEqual(Array(10).fill(0));
    provider.setTokenFault('none');
    clockOffsetMs += 61_000;
    await waitUntil('all sent', async () => (await views()).every((v) => v.status === 'sent'), 30_000);
    const subjects = exchange.messages.map((m) => /^Subject: (.*)$/m.exec(m.raw)![1]!);
    expect(subjects.filter((s) => s.startsWith('smtp storm '))).toHaveLength(10);
    expect(new Set(subjects).size).toBe(10);
    expect(exchange.messages.every((m) => m.user === 'shared@contoso.test')).toBe(true);
  });
});
