import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GRANTS, openToken, type GrantRecord } from '../../src/tokens/grants.js';
import {
  makeClientCertificate,
  makeServiceAccountKey,
  startAppOnlySmtp,
  type AppOnlySmtp,
  type TestClientCertificate,
  type TestServiceAccount,
} from '../fakes/app-only.js';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { providerEnv, TEST_ACTOR } from '../fakes/oauth-setup.js';
import { startFakeProvider, type FakeProvider } from '../fakes/oidc-provider.js';

/**
 * App-only credentials end to end: queue → transport → token service → a local provider (client credentials
 * with a secret or a certificate; a service account's JWT bearer grant) → an SMTP server that accepts XOAUTH2
 * only for tokens introspection vouches for. Nobody presses Authorize; no refresh token exists; secrets never
 * reach the store files, the logs or a page.
 */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(path.join(entry.parentPath, entry.name));
  }
  return out;
}

/** The part of a PEM key that is secret (its base64 body), long enough to never occur by chance. */
const keyBody = (pem: string) =>
  /-----BEGIN [A-Z ]*PRIVATE KEY-----\s*([A-Za-z0-9+/=\s]{80})/.exec(pem)![1]!.replace(/\s/g, '');

const SMTP_SCOPE = 'https://outlook.office365.com/.default';
const GMAIL_SCOPE = 'https://mail.google.com/';

describe('app-only credentials', () => {
  let microsoft: FakeProvider;
  let google: FakeProvider;
  let exchange: AppOnlySmtp;
  let gmail: AppOnlySmtp;
  let app: TestApp;
  let clockOffsetMs = 0;
  const logLines: string[] = [];
  const canaries: string[] = [];
  /** Client ids of the Microsoft apps registered for these tests (Exchange accepts their tokens for any mailbox). */
  const microsoftApps = new Set<string>();
  let certificate: TestClientCertificate;
  let serviceAccount: TestServiceAccount;
  const ids: Record<string, { integrationId: string; serverId: string }> = {};

  beforeAll(async () => {
    microsoft = await startFakeProvider({ kind: 'microsoft', accessTokenTtlSec: 30 });
    google = await startFakeProvider({ kind: 'google', accessTokenTtlSec: 30 });
    exchange = await startAppOnlySmtp(microsoft, {
      scope: SMTP_SCOPE,
      // SMTP.SendAsApp: the token names the application, the XOAUTH2 user the mailbox it sends from.
      accept: (info, user) => microsoftApps.has(info.client_id ?? '') && info.sub === undefined && user.includes('@'),
    });
    gmail = await startAppOnlySmtp(google, { scope: GMAIL_SCOPE, accept: (info, user) => info.sub === user });
    app = await startTestApp({
      workers: true,
      clock: () => Date.now() + clockOffsetMs,
      logDestination: new Writable({
        write(chunk: Buffer, _enc, cb) {
          logLines.push(chunk.toString());
          cb();
        },
      }),
      env: {
        MAILGATE_LOG_LEVEL: 'debug',
        MAILGATE_QUEUE_RETRY_BASE_MS: '100',
        ...providerEnv(microsoft),
        MAILGATE_GOOGLE_ISSUER: google.issuer,
      },
    });
    certificate = await makeClientCertificate();
    serviceAccount = makeServiceAccountKey(google);
    canaries.push(keyBody(certificate.pem), keyBody(serviceAccount.privateKeyPem));
  });
  afterAll(async () => {
    await app?.close();
    await exchange?.close();
    await gmail?.close();
    await microsoft?.close();
    await google?.close();
  });

  async function server(name: string, integrationId: string, port: number, username: string) {
    const created = await app.services.mail.servers.create(
      {
        name,
        fromAddress: username,
        host: '127.0.0.1',
        port,
        protocol: 'smtp',
        authMethod: 'oauth2',
        oauthIntegrationId: integrationId,
        username,
        timeoutMs: 5000,
      },
      { actor: TEST_ACTOR },
    );
    return created.id;
  }

  async function send(serverId: string, n: number): Promise<void> {
    const { id } = await app.services.mail.queue.enqueue({
      serverId,
      to: ['bob@example.test'],
      subject: `app-only ${n}`,
      text: `message ${n}`,
    });
    await waitUntil(`delivery of ${n}`, async () => (await app.services.mail.queue.get(id)).status === 'sent').catch(
      async (err: Error) => {
        const grant = await app.store.get<GrantRecord>(GRANTS, serverId);
        throw new Error(
          `${err.message}: ${JSON.stringify(await app.services.mail.queue.get(id))}; grant ${JSON.stringify(grant?.value.lastError ?? grant?.value.status ?? null)}; smtp ${JSON.stringify([...exchange.authAttempts, ...gmail.authAttempts])}`,
        );
      },
    );
  }

  async function grantOf(serverId: string): Promise<GrantRecord> {
    const doc = await app.store.get<GrantRecord>(GRANTS, serverId);
    expect(doc).not.toBeNull();
    canaries.push(openToken(app.services.keyring, serverId, 'accessToken', doc!.value.tokens.accessToken));
    return doc!.value;
  }

  it('Microsoft client credentials with a client secret: SMTP.SendAsApp through XOAUTH2, no Authorize', async () => {
    const clientId = `app-${randomBytes(4).toString('hex')}`;
    const clientSecret = `secret-${randomBytes(16).toString('hex')}`;
    canaries.push(clientSecret);
    await microsoft.registerClient({ clientId, clientSecret, redirectUris: [] });
    microsoftApps.add(clientId);
    const integration = await app.services.oauthIntegrations.create(
      {
        name: 'app-only secret',
        provider: 'microsoft',
        tenant: microsoft.tenant,
        clientId,
        grantType: 'client_credentials',
        clientSecret,
      },
      TEST_ACTOR,
    );
    const serverId = await server('shared mailbox', integration.id, exchange.port, 'shared@contoso.test');
    ids.secret = { integrationId: integration.id, serverId };
    const before = microsoft.counts.clientCredentials;
    await send(serverId, 1);
    expect(exchange.messages.at(-1)?.user).toBe('shared@contoso.test');
    expect(exchange.authAttempts.at(-1)).toMatchObject({ accepted: true, clientId });
    expect(microsoft.counts.clientCredentials).toBeGreaterThan(before);
    const grant = await grantOf(serverId);
    expect(grant.appOnly).toEqual({ scope: SMTP_SCOPE, protocol: 'smtp' });
    expect(grant.tokens.refreshToken).toBeNull();
    expect(grant.mailbox).toBe('shared@contoso.test');
    await expect(app.services.authorize.begin({ serverId, sessionId: 's', actor: TEST_ACTOR })).rejects.toMatchObject({
      code: 'bad_request',
    });
  });

  it('Microsoft client credentials with a certificate: private_key_jwt naming the certificate by x5t#S256', async () => {
    const clientId = `app-${randomBytes(4).toString('hex')}`;
    await microsoft.registerClient({
      clientId,
      redirectUris: [],
      authMethod: 'private_key_jwt',
      jwks: [certificate.jwk],
    });
    microsoftApps.add(clientId);
    const integration = await app.services.oauthIntegrations.create(
      {
        name: 'app-only certificate',
        provider: 'microsoft',
        tenant: microsoft.tenant,
        clientId,
        grantType: 'client_credentials',
        clientCertificate: certificate.pem,
      },
      TEST_ACTOR,
    );
    const view = app.services.oauthIntegrations.view(integration);
    expect(view).toMatchObject({ hasClientCertificate: true, hasClientSecret: false });
    expect(view.certificate?.thumbprint).toMatch(/^[0-9A-F]{40}$/);
    // The certificate's end of validity is the credential's expiry: warnings come before it.
    expect(view.secretExpiresAt).toBe(view.certificate?.notAfter);
    const serverId = await server('cert mailbox', integration.id, exchange.port, 'noreply@contoso.test');
    ids.certificate = { integrationId: integration.id, serverId };
    await send(serverId, 2);
    expect(exchange.messages.at(-1)?.user).toBe('noreply@contoso.test');
    const assertion = microsoft.lastClientAssertion!;
    expect(assertion.header).toMatchObject({ alg: 'RS256' });
    expect(assertion.header['x5t#S256']).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(assertion.header.x5t).toMatch(/^[A-Za-z0-9_-]{27}$/);
    expect(assertion.payload).toMatchObject({ iss: clientId, sub: clientId, aud: `${microsoft.issuer}/token` });
    await grantOf(serverId);
  });

  it('Google service account: JWT bearer with sub = the mailbox, XOAUTH2 as that mailbox', async () => {
    await google.registerServiceAccount({
      clientEmail: serviceAccount.clientEmail,
      clientId: serviceAccount.clientId,
      publicKeyPem: serviceAccount.publicKeyPem,
      delegatedScopes: [GMAIL_SCOPE],
    });
    const integration = await app.services.oauthIntegrations.create(
      {
        name: 'service account',
        provider: 'google',
        grantType: 'service_account',
        serviceAccountKey: serviceAccount.json,
      },
      TEST_ACTOR,
    );
    expect(app.services.oauthIntegrations.view(integration).serviceAccount?.clientEmail).toBe(
      serviceAccount.clientEmail,
    );
    const serverId = await server('workspace mailbox', integration.id, gmail.port, 'carol@example.test');
    ids.google = { integrationId: integration.id, serverId };
    await send(serverId, 3);
    expect(gmail.messages.at(-1)?.user).toBe('carol@example.test');
    expect(gmail.authAttempts.at(-1)).toMatchObject({ accepted: true, sub: 'carol@example.test' });
    expect(google.counts.jwtBearer).toBeGreaterThan(0);
    const grant = await grantOf(serverId);
    expect(grant.appOnly?.scope).toBe(GMAIL_SCOPE);
  });

  it('a new mailbox name on the server makes a new token for that mailbox', async () => {
    const { serverId } = ids.google!;
    const current = await app.services.mail.servers.get(serverId);
    await app.services.mail.servers.update(
      serverId,
      { ...current, username: 'dave@example.test', fromAddress: 'dave@example.test' },
      { actor: TEST_ACTOR },
    );
    exchange.dropConnections();
    gmail.dropConnections();
    await send(serverId, 4);
    expect(gmail.authAttempts.at(-1)).toMatchObject({ accepted: true, sub: 'dave@example.test' });
  });

  it('tokens are renewed ahead of expiry by the scheduler, once per server, with no refresh token', async () => {
    const servers = [ids.secret!.serverId, ids.certificate!.serverId];
    const before = await Promise.all(servers.map(grantOf));
    const requests = microsoft.counts.clientCredentials;
    // Into the last 20 % of the tokens' life: the scheduler asks for new ones without anyone sending.
    const latest = Math.max(...before.map((g) => g.tokens.expiresAt));
    clockOffsetMs += latest - (Date.now() + clockOffsetMs) - 2000;
    await waitUntil('renewed tokens', async () => {
      const now = await Promise.all(servers.map(grantOf));
      return now.every((g, i) => g.tokens.obtainedAt > before[i]!.tokens.obtainedAt);
    });
    // A scheduler pass at this time, once the background one has finished: nothing more is due.
    await app.services.tokenScheduler.stop();
    expect(await app.services.tokenScheduler.runDue()).toBe(0);
    await app.services.tokenScheduler.start();
    for (const [i, after] of (await Promise.all(servers.map(grantOf))).entries()) {
      expect(after.tokens.refreshToken).toBeNull();
      expect(after.tokens.expiresAt).toBeGreaterThan(before[i]!.tokens.expiresAt);
    }
    expect(microsoft.counts.clientCredentials).toBe(requests + servers.length);
    exchange.dropConnections();
    await send(ids.secret!.serverId, 5);
  });

  it('rotating each credential: a credential the provider refuses changes nothing; a proven one replaces the old', async () => {
    // Client secret.
    const { integrationId: secretId, serverId: secretServer } = ids.secret!;
    const integration = await app.services.oauthIntegrations.get(secretId);
    await expect(
      app.services.oauthAdmin.rotateClientSecret(secretId, { clientSecret: 'not-the-secret' }, TEST_ACTOR),
    ).rejects.toMatchObject({ code: 'validation_failed', details: [{ field: 'clientSecret' }] });
    expect((await app.services.oauthIntegrations.get(secretId)).value.clientSecret).toBe(
      integration.value.clientSecret,
    );
    const newSecret = `secret-${randomBytes(16).toString('hex')}`;
    canaries.push(newSecret);
    await microsoft.changeClientSecret(integration.value.clientId, newSecret);
    await expect(
      app.services.oauthAdmin.rotateClientSecret(secretId, { clientSecret: newSecret }, TEST_ACTOR),
    ).resolves.toMatchObject({ provenWith: 'client_credentials' });
    exchange.dropConnections();
    await app.services.tokens.getAccessToken(secretServer, { force: true });
    await send(secretServer, 6);

    // Certificate: a new one works only once the provider knows it (Entra keeps both during the change).
    const { integrationId: certId, serverId: certServer } = ids.certificate!;
    const next = await makeClientCertificate('mailgate next');
    canaries.push(keyBody(next.pem));
    await expect(
      app.services.oauthAdmin.rotateClientSecret(certId, { clientCertificate: next.pem }, TEST_ACTOR),
    ).rejects.toMatchObject({ code: 'validation_failed', details: [{ field: 'clientCertificate' }] });
    const certClientId = (await app.services.oauthIntegrations.get(certId)).value.clientId;
    await microsoft.changeClientKeys(certClientId, [certificate.jwk, next.jwk]);
    await expect(
      app.services.oauthAdmin.rotateClientSecret(certId, { clientCertificate: next.pem }, TEST_ACTOR),
    ).resolves.toMatchObject({ provenWith: 'client_credentials' });
    await microsoft.changeClientKeys(certClientId, [next.jwk]);
    exchange.dropConnections();
    await app.services.tokens.getAccessToken(certServer, { force: true });
    await send(certServer, 7);

    // Service-account key.
    const { integrationId: googleId, serverId: googleServer } = ids.google!;
    const nextKey = makeServiceAccountKey(google, serviceAccount.clientEmail);
    const nextJson = JSON.stringify({ ...JSON.parse(nextKey.json), client_id: serviceAccount.clientId });
    canaries.push(keyBody(nextKey.privateKeyPem));
    await expect(
      app.services.oauthAdmin.rotateClientSecret(googleId, { serviceAccountKey: nextJson }, TEST_ACTOR),
    ).rejects.toMatchObject({ code: 'validation_failed', details: [{ field: 'serviceAccountKey' }] });
    gmail.dropConnections();
    await send(googleServer, 8); // the old key still works
    google.changeServiceAccountKey(serviceAccount.clientEmail, nextKey.publicKeyPem);
    await expect(
      app.services.oauthAdmin.rotateClientSecret(googleId, { serviceAccountKey: nextJson }, TEST_ACTOR),
    ).resolves.toMatchObject({ provenWith: 'jwt_bearer' });
    gmail.dropConnections();
    await app.services.tokens.getAccessToken(googleServer, { force: true });
    await send(googleServer, 9);
  });

  it('no secret, key or token is in the store files, the logs or the pages', async () => {
    const admin = await app.browserSession('sysadmin');
    const pages: string[] = [];
    for (const { integrationId } of Object.values(ids)) {
      pages.push((await admin.get(`/admin/oauth-integrations/${integrationId}`)).text);
    }
    pages.push((await admin.get('/admin/oauth-integrations')).text);
    const key = await app.apiKey(['admin']);
    const api = await fetch(`${app.url}/api/v1/oauth-integrations`, { headers: { authorization: `Bearer ${key}` } });
    pages.push(await api.text());
    const files = await Promise.all((await filesUnder(app.config.MAILGATE_DATA_DIR)).map((f) => readFile(f, 'latin1')));
    expect(canaries.length).toBeGreaterThan(8);
    for (const canary of canaries) {
      for (const text of [...files, logLines.join('\n'), ...pages]) expect(text).not.toContain(canary);
    }
    // The service-account email and certificate thumbprint are shown: they are not secrets.
    expect(pages.join('\n')).toContain(serviceAccount.clientEmail);
  });
});
