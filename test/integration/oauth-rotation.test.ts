import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli.js';
import { GRANTS, openToken, type GrantRecord } from '../../src/tokens/grants.js';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { authorizeThroughServices, createOAuthServer, providerEnv } from '../fakes/oauth-setup.js';
import { startFakeProvider, type FakeProvider } from '../fakes/oidc-provider.js';
import { redisUrlForTests } from '../fakes/redis.js';

function sink(): { stream: Writable; text: () => string } {
  let out = '';
  return {
    stream: new Writable({
      write(c: Buffer, _e, cb) {
        out += c.toString();
        cb();
      },
    }),
    text: () => out,
  };
}

describe.skipIf(!redisUrlForTests())('client secret rotation and revocation (Microsoft flavour, Redis)', () => {
  let provider: FakeProvider;
  let app: TestApp;
  let key: string;
  let ids: Awaited<ReturnType<typeof createOAuthServer>>;

  beforeAll(async () => {
    provider = await startFakeProvider({ kind: 'microsoft', accessTokenTtlSec: 30 });
    app = await startTestApp({ store: 'redis', env: providerEnv(provider) });
    key = await app.apiKey(['admin']);
    ids = await createOAuthServer(app.services, provider, 2525);
    await authorizeThroughServices(app.services, ids.serverId);
  });
  afterAll(async () => {
    await app?.close();
    await provider?.close();
  });

  const rotate = (clientSecret: string) =>
    fetch(`${app.url}/api/v1/oauth-integrations/${ids.integrationId}/rotate-secret`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ clientSecret, expiresAt: '2099-01-31' }),
    });

  it('a wrong new secret is refused; the old one stays in use and tokens still refresh', async () => {
    const res = await rotate('not-the-secret');
    expect(res.status).toBe(400);
    expect(JSON.stringify(await res.json())).toContain('rejected the new client secret');
    // The same through the page's form.
    const admin = await app.browserSession('sysadmin');
    const page = await admin.postForm(`/admin/oauth-integrations/${ids.integrationId}/rotate-secret`, {
      clientSecret: 'also-not-the-secret',
    });
    expect(page.res.status).toBe(400);
    expect(page.text).toContain('rejected the new client secret');
    expect(page.text).not.toContain('also-not-the-secret');
    const integration = await app.services.oauthIntegrations.get(ids.integrationId);
    expect(app.services.oauthIntegrations.openSecret(integration)).toBe(ids.clientSecret);
    expect(integration.value.misconfigured).toBeNull();
    const before = provider.counts.refresh;
    await app.services.tokens.getAccessToken(ids.serverId, { force: true });
    expect(provider.counts.refresh - before).toBe(1);
    expect((await app.store.get<GrantRecord>(GRANTS, ids.serverId))?.value.status).toBe('active');
    const audit = await app.services.audit.list({ limit: 50 });
    expect(audit.entries.some((e) => e.action === 'oauth_integration.rotate_secret' && e.outcome === 'failure')).toBe(
      true,
    );
  });

  it('the right new secret is proven with a real refresh, then replaces the old one', async () => {
    const newSecret = 'rotated-secret-0123456789abcdef';
    await provider.changeClientSecret(ids.clientId, newSecret);
    const before = provider.counts.refresh;
    const errorsBefore = provider.counts.refreshErrors;
    const res = await rotate(newSecret);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { provenWith: string; integration: { secretExpiresAt: string } };
    expect(body.provenWith).toBe('refresh_token');
    expect(body.integration.secretExpiresAt).toBe('2099-01-31');
    expect(JSON.stringify(body)).not.toContain(newSecret);
    expect(provider.counts.refresh - before).toBe(1);
    const integration = await app.services.oauthIntegrations.get(ids.integrationId);
    expect(app.services.oauthIntegrations.openSecret(integration)).toBe(newSecret);
    // The rotated refresh token of the proving request was stored: the grant keeps refreshing with the new secret.
    await app.services.tokens.getAccessToken(ids.serverId, { force: true });
    expect(provider.counts.refreshErrors).toBe(errorsBefore);
    expect(provider.counts.refresh - before).toBe(2);
  });

  it('CLI tokens revoke: local tokens deleted, Microsoft has no revocation endpoint (said so), no token left in the store', async () => {
    const grant = await app.store.get<GrantRecord>(GRANTS, ids.serverId);
    const secrets = [
      openToken(app.services.keyring, ids.serverId, 'refreshToken', grant!.value.tokens.refreshToken!),
      openToken(app.services.keyring, ids.serverId, 'accessToken', grant!.value.tokens.accessToken),
    ];
    const out = sink();
    const err = sink();
    const code = await runCli(['tokens', 'revoke', ids.serverId], {
      stdout: out.stream,
      stderr: err.stream,
      env: app.env,
      onInterrupt: () => () => {},
    });
    expect(err.text()).toBe('');
    expect(code).toBe(0);
    expect(out.text()).toContain('Deleted the tokens of alice@example.test');
    expect(out.text()).toContain('Microsoft has no token revocation endpoint');
    expect(await app.store.get(GRANTS, ids.serverId)).toBeNull();
    for (const collection of await app.store.collections()) {
      const dump = JSON.stringify(await app.store.list(collection));
      for (const s of secrets) expect(dump.includes(s)).toBe(false);
    }
    const audit = await app.services.audit.list({ limit: 50 });
    const event = audit.entries.find((e) => e.action === 'oauth.grant.disconnect');
    expect(event?.actor.type).toBe('cli');
    expect(event?.detail?.revokedAtProvider).toBe(false);
  });
});
