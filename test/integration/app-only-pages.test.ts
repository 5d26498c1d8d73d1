import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  makeClientCertificate,
  makeServiceAccountKey,
  type TestClientCertificate,
  type TestServiceAccount,
} from '../fakes/app-only.js';
import { startTestApp, type HttpSession, type TestApp } from '../fakes/app.js';
import { providerEnv, TEST_ACTOR } from '../fakes/oauth-setup.js';
import { startFakeProvider, type FakeProvider } from '../fakes/oidc-provider.js';

/**
 * App-only integrations through the pages and the JSON API: fields per grant type, credentials never echoed,
 * bad credentials refused naming their field with nothing stored, Japanese labels, and Delete integration
 * behind a confirmation step.
 */

interface ApiBody {
  [field: string]: unknown;
  id: string;
  error: { details: { field: string; message: string }[] };
}

const keyBody = (pem: string) =>
  /-----BEGIN [A-Z ]*PRIVATE KEY-----\s*([A-Za-z0-9+/=\s]{80})/.exec(pem)![1]!.replace(/\s/g, '');

describe('app-only integration pages and API', () => {
  let microsoft: FakeProvider;
  let google: FakeProvider;
  let app: TestApp;
  let admin: HttpSession;
  let adminKey: string;
  let certificate: TestClientCertificate;
  let serviceAccount: TestServiceAccount;

  beforeAll(async () => {
    microsoft = await startFakeProvider({ kind: 'microsoft' });
    google = await startFakeProvider({ kind: 'google' });
    app = await startTestApp({ env: { ...providerEnv(microsoft), MAILGATE_GOOGLE_ISSUER: google.issuer } });
    admin = await app.browserSession('sysadmin');
    adminKey = await app.apiKey(['admin']);
    certificate = await makeClientCertificate();
    serviceAccount = makeServiceAccountKey(google);
  });
  afterAll(async () => {
    await app?.close();
    await microsoft?.close();
    await google?.close();
  });

  const api = (method: string, path: string, body?: unknown) =>
    fetch(`${app.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
      ...(body ? { body: JSON.stringify(body) } : {}),
    }).then(async (res) => ({ status: res.status, body: (await res.json()) as ApiBody }));

  it('adds a certificate integration through the form; the page shows its thumbprint, never the key', async () => {
    const { res } = await admin.postForm('/admin/oauth-integrations', {
      name: 'Exchange app-only',
      provider: 'microsoft',
      grantType: 'client_credentials',
      clientId: `app-${randomBytes(4).toString('hex')}`,
      tenant: microsoft.tenant,
      clientCertificate: certificate.pem,
    });
    expect(res.status).toBe(303);
    const location = res.headers.get('location')!;
    const page = (await admin.get(location)).text;
    expect(page).toMatch(/id="stored-certificate">Stored certificate: thumbprint [0-9A-F]{40}/);
    expect(page).not.toContain(keyBody(certificate.pem));
    // Only this grant type's fields: no redirect URI to register, no service-account key, a certificate rotation.
    expect(page).not.toContain('id="redirect-uri"');
    expect(page).not.toContain('name="serviceAccountKey"');
    expect(page).toContain('name="clientCertificate"');
    const ja = (await admin.get(location, { headers: { 'accept-language': 'ja' } })).text;
    expect(ja).toContain('アプリのみ (クライアント資格情報)');
    expect(ja).toContain('保存済みの証明書');
    const list = (await admin.get('/admin/oauth-integrations')).text;
    expect(list).toContain('App-only (client credentials)');
  });

  it('a bad certificate is refused naming the field, and is not shown again', async () => {
    const count = (await app.services.oauthIntegrations.list()).length;
    const wrong = await makeClientCertificate('other');
    const mismatched =
      certificate.pem.slice(0, certificate.pem.indexOf('-----BEGIN PRIVATE KEY')) +
      wrong.pem.slice(wrong.pem.indexOf('-----BEGIN PRIVATE KEY'));
    const { res, text } = await admin.postForm('/admin/oauth-integrations', {
      name: 'mismatch',
      provider: 'microsoft',
      grantType: 'client_credentials',
      clientId: 'x',
      tenant: microsoft.tenant,
      clientCertificate: mismatched,
    });
    expect(res.status).toBe(400);
    expect(text).toContain('<code>clientCertificate</code>');
    expect(text).toContain('does not belong to this certificate');
    expect(text).not.toContain(keyBody(wrong.pem));
    expect((await app.services.oauthIntegrations.list()).length).toBe(count);
  });

  it('names the field of each bad credential and stores nothing', async () => {
    const count = (await app.services.oauthIntegrations.list()).length;
    const certOnly = certificate.pem.slice(0, certificate.pem.indexOf('-----BEGIN PRIVATE KEY'));
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ clientCertificate: 'not a pem' }, 'clientCertificate', /BEGIN CERTIFICATE/],
      [{ clientCertificate: certOnly }, 'clientCertificate', /private key/],
      [{ clientSecret: 'x', clientCertificate: certificate.pem }, 'clientCertificate', /not both/],
      [{}, 'clientSecret', /required/],
    ];
    for (const [credential, field, message] of cases) {
      await expect(
        app.services.oauthIntegrations.create(
          {
            name: 'bad',
            provider: 'microsoft',
            tenant: microsoft.tenant,
            clientId: 'x',
            grantType: 'client_credentials',
            ...credential,
          },
          TEST_ACTOR,
        ),
      ).rejects.toMatchObject({
        code: 'validation_failed',
        details: [{ field, message: expect.stringMatching(message) }],
      });
    }
    const { client_email: _e, ...noEmail } = JSON.parse(serviceAccount.json) as Record<string, unknown>;
    for (const [key, message] of [
      [JSON.stringify(noEmail), /client_email/],
      ['{not json', /not JSON/],
      [JSON.stringify({ ...JSON.parse(serviceAccount.json), token_uri: 'ftp://x' }), /token_uri/],
    ] as const) {
      const res = await api('POST', '/api/v1/oauth-integrations', {
        name: 'bad',
        provider: 'google',
        grantType: 'service_account',
        serviceAccountKey: key,
      });
      expect(res.status).toBe(400);
      expect(res.body.error.details).toEqual([{ field: 'serviceAccountKey', message: expect.stringMatching(message) }]);
    }
    const wrongKind = await api('POST', '/api/v1/oauth-integrations', {
      name: 'bad',
      provider: 'google',
      grantType: 'client_credentials',
      clientId: 'x',
      clientSecret: 'y',
    });
    expect(wrongKind.body.error.details).toEqual([{ field: 'grantType', message: expect.any(String) }]);
    expect((await app.services.oauthIntegrations.list()).length).toBe(count);
  });

  it('the API takes a service-account key and answers without it', async () => {
    const res = await api('POST', '/api/v1/oauth-integrations', {
      name: 'Workspace',
      provider: 'google',
      grantType: 'service_account',
      serviceAccountKey: serviceAccount.json,
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      grantType: 'service_account',
      hasServiceAccountKey: true,
      hasClientSecret: false,
      clientId: serviceAccount.clientId,
      serviceAccount: { clientEmail: serviceAccount.clientEmail, tokenUri: `${google.issuer}/token` },
    });
    expect(JSON.stringify(res.body)).not.toContain(keyBody(serviceAccount.privateKeyPem));
    expect(res.body).not.toHaveProperty('serviceAccountKey');
    const patched = await api('PATCH', `/api/v1/oauth-integrations/${res.body.id}`, {
      grantType: 'authorization_code',
    });
    expect(patched.body.error.details).toEqual([
      { field: 'grantType', message: expect.stringMatching(/cannot change/) },
    ]);
    // The edit form of a service account has no client ID or secret: Update keeps the stored key.
    const edit = await admin.get(`/admin/oauth-integrations/${res.body.id}`);
    expect(edit.text).not.toContain('name="clientId"');
    const updated = await admin.postForm(`/admin/oauth-integrations/${res.body.id}`, {
      name: 'Workspace mail',
      provider: 'google',
      grantType: 'service_account',
    });
    expect(updated.res.status).toBe(303);
    const after = await api('GET', `/api/v1/oauth-integrations/${res.body.id}`);
    expect(after.body).toMatchObject({
      name: 'Workspace mail',
      hasServiceAccountKey: true,
      clientId: serviceAccount.clientId,
    });
  });

  it('Delete integration asks for confirmation first', async () => {
    const doc = await app.services.oauthIntegrations.create(
      { name: 'to delete', provider: 'google', grantType: 'service_account', serviceAccountKey: serviceAccount.json },
      TEST_ACTOR,
    );
    const first = await admin.postForm(`/admin/oauth-integrations/${doc.id}/delete`, {});
    expect(first.res.status).toBe(200);
    expect(first.text).toMatch(/Delete the OAuth 2\.0 integration (&quot;|&#34;)to delete(&quot;|&#34;)\?/);
    expect(first.text).toMatch(/<button[^>]*>Confirm<\/button>/);
    expect(await app.services.oauthIntegrations.find(doc.id)).not.toBeNull();
    const second = await admin.postForm(`/admin/oauth-integrations/${doc.id}/delete`, { confirmed: 'yes' });
    expect(second.res.status).toBe(303);
    expect(await app.services.oauthIntegrations.find(doc.id)).toBeNull();
  });

  it('a sovereign cloud: the integration’s authority, not the global one, issues its tokens', async () => {
    const sovereign = await startFakeProvider({ kind: 'microsoft', tenant: microsoft.tenant });
    try {
      const clientId = `gov-${randomBytes(4).toString('hex')}`;
      const clientSecret = `secret-${randomBytes(16).toString('hex')}`;
      await sovereign.registerClient({ clientId, clientSecret, redirectUris: [] });
      const created = await api('POST', '/api/v1/oauth-integrations', {
        name: 'GCC High',
        provider: 'microsoft',
        tenant: microsoft.tenant,
        grantType: 'client_credentials',
        clientId,
        clientSecret,
        authority: sovereign.authority,
        graphBaseUrl: 'https://graph.microsoft.us',
      });
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({
        authority: sovereign.authority,
        graphBaseUrl: 'https://graph.microsoft.us',
        resolvedIssuer: sovereign.issuer,
      });
      const server = await app.services.mail.servers.create(
        {
          name: 'gov',
          fromAddress: 'shared@agency.test',
          host: '127.0.0.1',
          port: 2525,
          protocol: 'smtp',
          authMethod: 'oauth2',
          oauthIntegrationId: created.body.id,
          username: 'shared@agency.test',
        },
        { actor: TEST_ACTOR },
      );
      const grant = await app.services.tokens.grantForServer(server.id);
      const token = await app.services.tokens.getAccessToken(grant!.grantId);
      expect((await sovereign.introspect(token.accessToken)).client_id).toBe(clientId);
      expect(sovereign.counts.clientCredentials).toBe(1);
      expect(microsoft.counts.clientCredentials).toBe(0);
    } finally {
      await sovereign.close();
    }
  });
});
