import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GRANTS, type GrantRecord } from '../../src/tokens/grants.js';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { startFakeProvider, type FakeProvider } from '../fakes/oidc-provider.js';
import { authorizeThroughServices, createOAuthServer, providerEnv } from '../fakes/oauth-setup.js';

describe.each(['microsoft', 'google'] as const)('token service against a local %s', (kind) => {
  let provider: FakeProvider;
  let app: TestApp;
  let serverId: string;
  // The app's clock runs this far ahead of the system clock; moving it expires tokens without waiting.
  let clockOffsetMs = 0;

  beforeAll(async () => {
    provider = await startFakeProvider({ kind, accessTokenTtlSec: 4 });
    app = await startTestApp({ env: providerEnv(provider), clock: () => Date.now() + clockOffsetMs });
    ({ serverId } = await createOAuthServer(app.services, provider, 2525));
    const { mailbox } = await authorizeThroughServices(app.services, serverId);
    expect(mailbox).toBe('alice@example.test');
  });
  afterAll(async () => {
    await app?.close();
    await provider?.close();
  });

  it('stores the grant sealed and hands out the access token without a refresh while it is fresh', async () => {
    const doc = await app.store.get<GrantRecord>(GRANTS, serverId);
    expect(doc?.value.status).toBe('active');
    expect(doc?.value.tokens.refreshToken).toMatch(/^mg1\./);
    expect(doc?.value.tokens.accessToken).toMatch(/^mg1\./);
    const before = provider.counts.refresh;
    const token = await app.services.tokens.getAccessToken(serverId);
    expect(token.accessToken.length).toBeGreaterThan(10);
    expect((await provider.introspect(token.accessToken)).active).toBe(true);
    expect(provider.counts.refresh).toBe(before);
  });

  it('200 concurrent callers at expiry cause exactly 1 refresh request at the provider', async () => {
    const doc = await app.store.get<GrantRecord>(GRANTS, serverId);
    clockOffsetMs += Math.max(0, doc!.value.tokens.expiresAt - (Date.now() + clockOffsetMs) + 50);
    const before = provider.counts.refresh;
    const edgeBefore = provider.edgeTokenRequests;
    const started = performance.now();
    const results = await Promise.all(Array.from({ length: 200 }, () => app.services.tokens.getAccessToken(serverId)));
    const elapsed = performance.now() - started;
    expect(provider.counts.refresh - before).toBe(1);
    expect(provider.edgeTokenRequests - edgeBefore).toBe(1);
    expect(new Set(results.map((r) => r.accessToken)).size).toBe(1);
    expect((await provider.introspect(results[0]!.accessToken)).active).toBe(true);
    console.info(
      `[figures] ${kind}: 200 concurrent getAccessToken at expiry → ${provider.counts.refresh - before} refresh request(s) in ${elapsed.toFixed(0)} ms`,
    );
  });

  it('force (nodemailer renew) refreshes once even with many concurrent renewals', async () => {
    const before = provider.counts.refresh;
    await Promise.all(Array.from({ length: 50 }, () => app.services.tokens.getAccessToken(serverId, { force: true })));
    expect(provider.counts.refresh - before).toBe(1);
  });

  it('keeps working across several refreshes (rotated refresh tokens are saved)', async () => {
    for (let i = 0; i < 3; i++) {
      const before = provider.counts.refresh;
      await app.services.tokens.getAccessToken(serverId, { force: true });
      expect(provider.counts.refresh - before).toBe(1);
    }
    expect(provider.counts.refreshErrors).toBe(0);
    const doc = await app.store.get<GrantRecord>(GRANTS, serverId);
    expect(doc?.value.status).toBe('active');
  });
});
