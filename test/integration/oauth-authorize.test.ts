import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TRANSACTIONS } from '../../src/tokens/authorize.js';
import { GRANTS, openToken, type GrantRecord } from '../../src/tokens/grants.js';
import { startTestApp, type HttpSession, type TestApp } from '../fakes/app.js';
import { consentAtProvider } from '../fakes/oauth-flow.js';
import { authorizeThroughServices, createOAuthServer, providerEnv, TEST_ACTOR } from '../fakes/oauth-setup.js';
import { startFakeProvider, type FakeProvider } from '../fakes/oidc-provider.js';

/** Presses Authorize through HTTP and returns the provider URL the interstitial page submits to, plus the page's CSP. */
async function pressAuthorize(
  session: HttpSession,
  serverId: string,
): Promise<{ providerUrl: string; csp: string; status: number }> {
  const { res, text } = await session.postForm(`/admin/smtp-servers/${serverId}/authorize`);
  const csp = res.headers.get('content-security-policy') ?? '';
  const action = /<form id="oauth-redirect" method="get" action="([^"]+)"/.exec(text)?.[1];
  if (!action) return { providerUrl: '', csp, status: res.status };
  const url = new URL(action.replace(/&amp;/g, '&'));
  for (const m of text.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) {
    if (m[1] !== '_csrf')
      url.searchParams.set(
        m[1]!,
        m[2]!
          .replace(/&amp;/g, '&')
          .replace(/&#39;/g, "'")
          .replace(/&quot;/g, '"'),
      );
  }
  return { providerUrl: url.href, csp, status: res.status };
}

/** The callback URL the provider sent, re-aimed at the test app (the redirect URI names MAILGATE_BASE_URL). */
function toApp(app: TestApp, callback: URL): string {
  return `${callback.pathname}${callback.search}`;
}

async function grantOf(app: TestApp, serverId: string) {
  return app.store.get<GrantRecord>(GRANTS, serverId);
}

describe('Authorize and callback over HTTP (Google flavour)', () => {
  let provider: FakeProvider;
  let app: TestApp;
  let admin: HttpSession;
  let serverId: string;
  let clientSecret: string;

  beforeAll(async () => {
    provider = await startFakeProvider({ kind: 'google', accessTokenTtlSec: 30 });
    app = await startTestApp({ env: providerEnv(provider) });
    admin = await app.browserSession('sysadmin');
    ({ serverId, clientSecret } = await createOAuthServer(app.services, provider, 2525));
  });
  afterAll(async () => {
    await app?.close();
    await provider?.close();
  });

  it('access_denied at the provider → clear page, nothing stored', async () => {
    const { providerUrl } = await pressAuthorize(admin, serverId);
    const callback = await consentAtProvider(providerUrl, 'alice@example.test', { deny: true });
    expect(callback.searchParams.get('error')).toBe('access_denied');
    const { res, text } = await admin.get(toApp(app, callback));
    expect(res.status).toBe(400);
    expect(text).toContain('Access was denied');
    expect(await grantOf(app, serverId)).toBeNull();
  });

  it('an account without email → clear page, nothing stored', async () => {
    const { providerUrl } = await pressAuthorize(admin, serverId);
    const callback = await consentAtProvider(providerUrl, 'no-email-account');
    const { res, text } = await admin.get(toApp(app, callback));
    expect(res.status).toBe(400);
    expect(text).toContain('has no email address');
    expect(await grantOf(app, serverId)).toBeNull();
  });

  it('an unverified email (email_verified false) → clear page, audited, nothing stored', async () => {
    const { providerUrl } = await pressAuthorize(admin, serverId);
    const callback = await consentAtProvider(providerUrl, 'unverified+mallory@example.test');
    const { res, text } = await admin.get(toApp(app, callback));
    expect(res.status).toBe(400);
    expect(text).toContain('not verified');
    expect(await grantOf(app, serverId)).toBeNull();
    const audit = await app.services.audit.list({ limit: 20 });
    const event = audit.entries.find(
      (e) => e.action === 'oauth.authorize' && e.outcome === 'failure' && e.target === `smtp_server:${serverId}`,
    );
    expect(event?.detail).toMatchObject({ error: 'email_unverified' });
  });

  it('a response claiming another issuer is refused before the code is exchanged', async () => {
    const { providerUrl } = await pressAuthorize(admin, serverId);
    const callback = await consentAtProvider(providerUrl, 'alice@example.test');
    const exchangesBefore = provider.counts.authorizationCode;
    callback.searchParams.set('iss', 'https://accounts.evil.example');
    const { res, text } = await admin.get(toApp(app, callback));
    expect(res.status).toBe(400);
    expect(text).toContain('another issuer');
    expect(provider.counts.authorizationCode).toBe(exchangesBefore);
    expect(await grantOf(app, serverId)).toBeNull();
  });

  it('a callback finished in another admin session is refused', async () => {
    const { providerUrl } = await pressAuthorize(admin, serverId);
    const callback = await consentAtProvider(providerUrl, 'alice@example.test');
    const other = await app.browserSession('sysadmin');
    const { res, text } = await other.get(toApp(app, callback));
    expect(res.status).toBe(403);
    expect(text).toContain('another browser session');
    expect(await grantOf(app, serverId)).toBeNull();
  });

  it('an expired transaction is refused', async () => {
    const { providerUrl } = await pressAuthorize(admin, serverId);
    for (const tx of await app.store.list<{ expiresAt: number }>(TRANSACTIONS)) {
      await app.store.put(TRANSACTIONS, tx.id, { ...tx.value, expiresAt: Date.now() - 1 }, { ifVersion: tx.version });
    }
    const callback = await consentAtProvider(providerUrl, 'alice@example.test');
    const { res, text } = await admin.get(toApp(app, callback));
    expect(res.status).toBe(400);
    expect(text).toContain('expired');
    expect(await grantOf(app, serverId)).toBeNull();
  });

  it('missing and forged state are refused', async () => {
    const missing = await admin.get('/oauth/callback?code=abc');
    expect(missing.res.status).toBe(400);
    expect(missing.text).toContain('no state');
    const forged = await admin.get('/oauth/callback?code=abc&state=forged-state-value');
    expect(forged.res.status).toBe(400);
    expect(forged.text).toContain('unknown or was already used');
    expect(await grantOf(app, serverId)).toBeNull();
  });

  it('a code issued to another client is refused (the integration comes from the transaction)', async () => {
    const other = await createOAuthServer(app.services, provider, 2526);
    const a = await pressAuthorize(admin, serverId);
    const b = await pressAuthorize(admin, other.serverId);
    const callbackA = await consentAtProvider(a.providerUrl, 'alice@example.test');
    const callbackB = await consentAtProvider(b.providerUrl, 'mallory@example.test');
    // B's code with A's state: mailgate redeems it as A's client, the provider refuses.
    callbackA.searchParams.set('code', callbackB.searchParams.get('code')!);
    const { res, text } = await admin.get(toApp(app, callbackA));
    expect(res.status).toBe(400);
    expect(text).toContain('did not accept the authorization');
    expect(await grantOf(app, serverId)).toBeNull();
  });

  it('the full flow: Authorize → consent → callback stores a sealed grant, audits, returns to the server page; replay refused', async () => {
    const { providerUrl, csp, status } = await pressAuthorize(admin, serverId);
    expect(status).toBe(200);
    expect(csp).toContain(`form-action 'self' ${provider.authority}`);
    const authUrl = new URL(providerUrl);
    expect(authUrl.searchParams.get('prompt')).toBe('consent');
    expect(authUrl.searchParams.get('access_type')).toBe('offline');
    expect(authUrl.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authUrl.searchParams.get('scope')).toBe('openid email https://mail.google.com/');
    expect(authUrl.searchParams.get('redirect_uri')).toBe(`${app.config.MAILGATE_BASE_URL}/oauth/callback`);

    const callback = await consentAtProvider(providerUrl, 'alice@example.test');
    // Open-redirect attempts ride along; the return path must stay the server page.
    callback.searchParams.set('returnTo', 'https://evil.example/');
    callback.searchParams.set('redirect_uri', 'https://evil.example/');
    const { res } = await admin.get(toApp(app, callback));
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe(`/admin/smtp-servers/${serverId}`);
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');

    const grant = await grantOf(app, serverId);
    expect(grant?.value.mailbox).toBe('alice@example.test');
    expect(grant?.value.tokens.refreshToken).toMatch(/^mg1\./);
    const audit = await app.services.audit.list({ limit: 50 });
    const event = audit.entries.find((e) => e.action === 'oauth.authorize' && e.outcome === 'success');
    expect(event?.detail?.mailbox).toBe('alice@example.test');
    expect(event?.target).toBe(`smtp_server:${serverId}`);

    // Marked as a Google app in testing (PATCH keeps everything else, the secret included).
    const integrationId = grant!.value.integrationId;
    const key = await app.apiKey(['admin']);
    const patched = await fetch(`${app.url}/api/v1/oauth-integrations/${integrationId}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ googleInTesting: true }),
    });
    expect(patched.status).toBe(200);
    expect(app.services.oauthIntegrations.openSecret(await app.services.oauthIntegrations.get(integrationId))).toBe(
      clientSecret,
    );

    // The server page shows the mailbox, the grant state, the buttons and the warning.
    const page = await admin.get(`/admin/smtp-servers/${serverId}`);
    expect(page.text).toContain('data-kind="google_in_testing"');
    expect(page.res.status).toBe(200);
    expect(page.text).toContain('<td id="oauth-mailbox">alice@example.test</td>');
    expect(page.text).toContain('>Re-authorize</button>');
    expect(page.text).toContain('>Disconnect</button>');
    expect(page.text).toContain('Authorized: mail from this server is now sent as alice@example.test');

    // The same callback again: the transaction was deleted on first use.
    const replay = await admin.get(toApp(app, callback));
    expect(replay.res.status).toBe(400);
    expect(replay.text).toContain('already used');
    expect((await grantOf(app, serverId))?.version).toBe(grant?.version);

    // Canary: no token, code, verifier or client secret in plaintext anywhere in the data folder.
    const refreshToken = openToken(app.services.keyring, serverId, 'refreshToken', grant!.value.tokens.refreshToken!);
    const accessToken = openToken(app.services.keyring, serverId, 'accessToken', grant!.value.tokens.accessToken);
    const canaries = [refreshToken, accessToken, clientSecret, callback.searchParams.get('code')!];
    const files = await listFiles(app.config.MAILGATE_DATA_DIR);
    expect(files.length).toBeGreaterThan(3);
    for (const f of files) {
      const content = await readFile(f, 'utf8');
      for (const c of canaries) expect(content.includes(c), `${c.slice(0, 6)}… found in ${f}`).toBe(false);
    }
  });

  it('Disconnect deletes local tokens first, then revokes at Google (RFC 7009)', async () => {
    const grant = await grantOf(app, serverId);
    const refreshToken = openToken(app.services.keyring, serverId, 'refreshToken', grant!.value.tokens.refreshToken!);
    expect((await provider.introspect(refreshToken)).active).toBe(true);
    const revocations = provider.counts.revocations;
    const key = await app.apiKey(['admin']);
    const res = await fetch(`${app.url}/api/v1/smtp-servers/${serverId}/disconnect`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}` },
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { revokedAtProvider: boolean; localTokensDeleted: boolean };
    expect(body).toMatchObject({ revokedAtProvider: true, localTokensDeleted: true });
    expect(await grantOf(app, serverId)).toBeNull();
    expect((await provider.introspect(refreshToken)).active).toBe(false);
    expect(provider.counts.revocations - revocations).toBe(1);
    const audit = await app.services.audit.list({ limit: 20 });
    expect(audit.entries.some((e) => e.action === 'oauth.grant.disconnect' && e.outcome === 'success')).toBe(true);
  });
});

describe('custom provider with explicit endpoints (no discovery)', () => {
  let provider: FakeProvider;
  let app: TestApp;
  beforeAll(async () => {
    provider = await startFakeProvider({ kind: 'google', accessTokenTtlSec: 30 });
    app = await startTestApp({ env: { MAILGATE_ALLOW_INSECURE_OAUTH: 'true' } });
  });
  afterAll(async () => {
    await app?.close();
    await provider?.close();
  });

  it('authorizes, refreshes and revokes through the given endpoints; only a sysadmin may press Authorize', async () => {
    const key = await app.apiKey(['admin']);
    const clientId = 'custom-client';
    const clientSecret = 'custom-client-secret-0123456789';
    await provider.registerClient({
      clientId,
      clientSecret,
      redirectUris: [`${app.config.MAILGATE_BASE_URL}/oauth/callback`],
    });
    const res = await fetch(`${app.url}/api/v1/oauth-integrations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        name: 'custom',
        provider: 'custom',
        clientId,
        clientSecret,
        authorizationEndpoint: `${provider.issuer}/auth`,
        tokenEndpoint: `${provider.issuer}/token`,
        revocationEndpoint: `${provider.issuer}/token/revocation`,
        scopes: ['https://mail.google.com/'],
      }),
    });
    expect(res.status).toBe(201);
    const integration = (await res.json()) as { id: string; resolvedIssuer: string | null };
    expect(integration.resolvedIssuer).toBeNull();
    const server = await app.services.mail.servers.create(
      {
        name: 'custom',
        fromAddress: 'alice@example.test',
        host: '127.0.0.1',
        port: 2525,
        protocol: 'smtp',
        authMethod: 'oauth2',
        oauthIntegrationId: integration.id,
        username: 'alice@example.test',
      },
      { actor: TEST_ACTOR },
    );
    const readOnlyAdmin = await app.browserSession('admin');
    const refused = await readOnlyAdmin.postForm(`/admin/smtp-servers/${server.id}/authorize`);
    expect(refused.res.status).toBe(403);

    const { mailbox } = await authorizeThroughServices(app.services, server.id);
    expect(mailbox).toBe('alice@example.test');
    const before = provider.counts.refresh;
    await app.services.tokens.getAccessToken(server.id, { force: true });
    expect(provider.counts.refresh - before).toBe(1);
    const disconnected = await fetch(`${app.url}/api/v1/smtp-servers/${server.id}/disconnect`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}` },
    });
    expect(((await disconnected.json()) as { revokedAtProvider: boolean }).revokedAtProvider).toBe(true);
  });
});

describe('bad integration input', () => {
  let app: TestApp;
  let key: string;
  beforeAll(async () => {
    app = await startTestApp();
    key = await app.apiKey(['admin']);
  });
  afterAll(async () => {
    await app?.close();
  });

  const post = (body: unknown) =>
    fetch(`${app.url}/api/v1/oauth-integrations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  it('refuses an http issuer without MAILGATE_ALLOW_INSECURE_OAUTH, a multi-tenant alias, unknown fields; stores nothing', async () => {
    const http = await post({
      name: 'x',
      provider: 'custom',
      clientId: 'c',
      clientSecret: 's',
      issuer: 'http://idp.example',
    });
    expect(http.status).toBe(400);
    expect(JSON.stringify(await http.json())).toContain('MAILGATE_ALLOW_INSECURE_OAUTH');
    const common = await post({ name: 'x', provider: 'microsoft', clientId: 'c', clientSecret: 's', tenant: 'common' });
    expect(common.status).toBe(400);
    expect(JSON.stringify(await common.json())).toContain('issuer template');
    const unknown = await post({ name: 'x', provider: 'google', clientId: 'c', clientSecret: 's', extra: 1 });
    expect(unknown.status).toBe(400);
    const list = await fetch(`${app.url}/api/v1/oauth-integrations`, { headers: { authorization: `Bearer ${key}` } });
    expect(((await list.json()) as { items: unknown[] }).items).toEqual([]);
  });

  it('never returns the client secret; warns in /readyz about expiring secrets and Google apps in testing', async () => {
    const soon = new Date(Date.now() + 5 * 86_400_000).toISOString().slice(0, 10);
    const res = await post({
      name: 'g',
      provider: 'google',
      clientId: 'c',
      clientSecret: 'very-secret-value',
      secretExpiresAt: soon,
      googleInTesting: true,
    });
    expect(res.status).toBe(201);
    const text = await res.text();
    expect(text).not.toContain('very-secret-value');
    expect(JSON.parse(text)).toMatchObject({
      hasClientSecret: true,
      redirectUri: `${app.config.MAILGATE_BASE_URL}/oauth/callback`,
    });
    const ready = (await (await fetch(`${app.url}/readyz`)).json()) as {
      checks: { oauth: { detail: { warnings: { kind: string }[] } } };
    };
    const kinds = ready.checks.oauth.detail.warnings.map((w) => w.kind);
    expect(kinds).toEqual(expect.arrayContaining(['secret_expiring', 'google_in_testing']));
    // The server list, where admins look every day, says the same before mail stops.
    const list = await (await app.browserSession('admin')).get('/admin/smtp-servers');
    expect(list.res.status).toBe(200);
    expect(list.text).toContain('id="warnings"');
    expect(list.text).toContain(`expires on ${soon}`);
    expect(list.text).toContain('refresh tokens expire after 7 days');
    expect(list.text).not.toContain('very-secret-value');
  });

  it('pages: Add and Update through the form keep the secret write-only; the list shows warnings and the redirect URI', async () => {
    const admin = await app.browserSession('sysadmin');
    const bad = await admin.postForm('/admin/oauth-integrations', {
      name: 'ms',
      provider: 'microsoft',
      clientId: 'cid',
      clientSecret: 'form-secret-value-1',
      tenant: 'organizations',
    });
    expect(bad.res.status).toBe(400);
    expect(bad.text).toContain('issuer template');
    expect(bad.text).not.toContain('form-secret-value-1');
    const added = await admin.postForm('/admin/oauth-integrations', {
      name: 'ms',
      provider: 'microsoft',
      clientId: 'cid',
      clientSecret: 'form-secret-value-1',
      tenant: 'contoso.onmicrosoft.com',
    });
    expect(added.res.status).toBe(303);
    const location = added.res.headers.get('location')!;
    const id = location.split('/').pop()!;
    const updated = await admin.postForm(location, {
      name: 'ms renamed',
      provider: 'microsoft',
      clientId: 'cid',
      clientSecret: '',
      tenant: 'contoso.onmicrosoft.com',
      scopes: 'https://outlook.office.com/SMTP.Send offline_access',
    });
    expect(updated.res.status).toBe(303);
    const doc = await app.services.oauthIntegrations.get(id);
    expect(doc.value.name).toBe('ms renamed');
    expect(app.services.oauthIntegrations.openSecret(doc)).toBe('form-secret-value-1');
    const page = await admin.get(location);
    expect(page.text).toContain(`${app.config.MAILGATE_BASE_URL}/oauth/callback`);
    expect(page.text).toContain('Microsoft has no token revocation endpoint');
    expect(page.text).not.toContain('form-secret-value-1');
    const list = await admin.get('/admin/oauth-integrations');
    expect(list.text).toContain('ms renamed');
    expect(list.text).toContain('data-kind="google_in_testing"');
    const audit = await app.services.audit.list({ limit: 20 });
    const update = audit.entries.find((e) => e.action === 'oauth_integration.update');
    expect(update?.detail?.changed).toEqual(expect.arrayContaining(['name']));
    expect(JSON.stringify(audit.entries)).not.toContain('form-secret-value-1');
  });
});

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(full)));
    else out.push(full);
  }
  return out;
}
