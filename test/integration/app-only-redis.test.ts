import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GRANTS, type GrantRecord } from '../../src/tokens/grants.js';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { providerEnv, TEST_ACTOR } from '../fakes/oauth-setup.js';
import { startFakeProvider, type FakeProvider } from '../fakes/oidc-provider.js';
import { redisUrlForTests } from '../fakes/redis.js';

/**
 * Two mailgate instances on one Redis, both running the token scheduler, both asked for the token of one
 * app-only server at the same moments: the provider sees one client credentials request per token, because
 * app-only tokens go through the same single refresher (lock, re-read, version-checked write) as refreshes.
 */

describe.skipIf(!redisUrlForTests())('app-only tokens across two instances on Redis', () => {
  let provider: FakeProvider;
  let a: TestApp;
  let b: TestApp;
  let clockOffsetMs = 0;
  const clock = () => Date.now() + clockOffsetMs;
  let serverId: string;

  beforeAll(async () => {
    provider = await startFakeProvider({ kind: 'microsoft', accessTokenTtlSec: 60 });
    a = await startTestApp({ store: 'redis', workers: true, clock, env: providerEnv(provider) });
    b = await startTestApp({ shareWith: a, workers: true, clock });
    const clientId = `app-${randomBytes(4).toString('hex')}`;
    const clientSecret = `secret-${randomBytes(16).toString('hex')}`;
    await provider.registerClient({ clientId, clientSecret, redirectUris: [] });
    const integration = await a.services.oauthIntegrations.create(
      {
        name: 'app-only',
        provider: 'microsoft',
        tenant: provider.tenant,
        clientId,
        grantType: 'client_credentials',
        clientSecret,
      },
      TEST_ACTOR,
    );
    const server = await a.services.mail.servers.create(
      {
        name: 'shared',
        fromAddress: 'shared@contoso.test',
        host: '127.0.0.1',
        port: 2525,
        protocol: 'smtp',
        authMethod: 'oauth2',
        oauthIntegrationId: integration.id,
        username: 'shared@contoso.test',
      },
      { actor: TEST_ACTOR },
    );
    serverId = server.id;
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
    await provider?.close();
  });

  /**
   * Lets the pass each instance's scheduler may be in finish, then runs one more on each at the current time:
   * whatever the schedulers would do about the token now, they have done.
   */
  async function afterSchedulerPasses(): Promise<void> {
    for (const app of [a, b]) await app.services.tokenScheduler.stop();
    for (const app of [a, b]) await app.services.tokenScheduler.runDue();
    for (const app of [a, b]) await app.services.tokenScheduler.start();
  }

  /** Twenty callers on each instance ask for the server's token at once. */
  async function stampede(): Promise<string[]> {
    const ask = (app: TestApp) =>
      app.services.tokens
        .grantForServer(serverId)
        .then((g) => app.services.tokens.getAccessToken(g!.grantId))
        .then((t) => t.accessToken);
    return Promise.all(Array.from({ length: 20 }, (_, i) => ask(i % 2 ? a : b)));
  }

  it('the first token: one request at the provider for 20 callers on two instances', async () => {
    const tokens = await stampede();
    expect(new Set(tokens).size).toBe(1);
    // The schedulers of both instances may also have been told about the new grant: still one request.
    await afterSchedulerPasses();
    expect(provider.counts.clientCredentials).toBe(1);
    const grant = await a.store.get<GrantRecord>(GRANTS, serverId);
    expect(grant?.value.appOnly?.scope).toBe('https://outlook.office365.com/.default');
  });

  it('ahead of expiry: one renewal, whoever asks and whichever scheduler runs', async () => {
    for (let round = 0; round < 3; round++) {
      const before = provider.counts.clientCredentials;
      const grant = (await a.store.get<GrantRecord>(GRANTS, serverId))!.value;
      // Into the last 20 % of the token's life (the last 12 s of 60).
      clockOffsetMs += grant.tokens.expiresAt - clock() - 5000;
      const tokens = await stampede();
      expect(new Set(tokens).size).toBe(1);
      await afterSchedulerPasses();
      expect(provider.counts.clientCredentials).toBe(before + 1);
      const after = (await a.store.get<GrantRecord>(GRANTS, serverId))!.value;
      expect(after.tokens.expiresAt).toBeGreaterThan(grant.tokens.expiresAt);
      expect(after.tokens.refreshToken).toBeNull();
    }
  });
});
