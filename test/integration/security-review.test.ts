import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { grantIndexChanges } from '../../src/tokens/grant-index.js';
import type { GrantRecord } from '../../src/tokens/grants.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Keyring } from '../../src/crypto/keyring.js';
import { assertAllKeysPresent, keyUsage, MissingEncryptionKeyError, rotateKeys } from '../../src/crypto/rotation.js';
import { redactString } from '../../src/log.js';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { redisUrlForTests } from '../fakes/redis.js';

/**
 * Security review: each test here is an attack that once worked (or crashed the request) and must keep
 * failing, on both stores where the store matters.
 */

async function api(app: TestApp, method: string, path: string, key: string, body?: unknown) {
  const res = await fetch(`${app.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {}, text };
}

class LineSink extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    done();
  }
}

for (const kind of ['file', 'redis'] as const) {
  describe.skipIf(kind === 'redis' && !redisUrlForTests())(`security review (${kind} store)`, () => {
    let app: TestApp;
    const log = new LineSink();
    beforeAll(async () => {
      app = await startTestApp({ store: kind, env: { MAILGATE_LOG_LEVEL: 'info' }, logDestination: log });
    });
    afterAll(async () => {
      await app?.close();
    });

    it('a CSRF token of the right length in multibyte characters is refused with 403, not a 500 with an error log', async () => {
      const s = await app.browserSession('sysadmin');
      const token = await s.refreshCsrf();
      const forged = `é${token.slice(1)}`;
      expect(forged.length).toBe(token.length);
      const before = log.lines.length;
      const { res } = await s.postForm('/admin/smtp-servers/outgoing', { enabled: 'false' }, { csrf: forged });
      expect(res.status).toBe(403);
      expect(log.lines.slice(before).filter((l) => l.includes('"level":"error"'))).toEqual([]);
      expect((await app.services.mail.servers.settings()).outgoingEnabled).toBe(true);
    });

    it('a browser POST without a form body (token in the header) is handled, not a 500', async () => {
      const s = await app.browserSession('admin');
      const token = await s.refreshCsrf();
      const res = await s.fetch('/logout', { method: 'POST', headers: { 'x-csrf-token': token } });
      expect(res.status).toBe(303);
      expect(res.headers.get('location')).toBe('/login');
      const other = await (
        await app.browserSession('sysadmin')
      ).fetch('/admin/api-keys', { method: 'POST', headers: { 'x-csrf-token': 'x' } });
      expect(other.status).toBe(403);
    });

    it('/readyz (no login) names no mailbox, integration or hint: only the kinds of OAuth warnings', async () => {
      const adminKey = await app.apiKey(['admin']);
      const soon = new Date(Date.now() + 3 * 86_400_000).toISOString().slice(0, 10);
      const created = await api(app, 'POST', '/api/v1/oauth-integrations', adminKey, {
        name: 'Payroll mailbox of ACME',
        provider: 'google',
        clientId: 'client-id',
        clientSecret: 'client-secret-value',
        secretExpiresAt: soon,
      });
      expect(created.status, created.text).toBe(201);
      const ready = await fetch(`${app.url}/readyz`);
      const text = await ready.text();
      expect(ready.status).toBe(200);
      expect(text).toContain('secret_expiring');
      expect(text).not.toContain('Payroll mailbox of ACME');
      expect(text).not.toContain(soon);
    });

    it('changing the host of a basic-auth server needs the password again: a stored password never goes to a new host', async () => {
      const adminKey = await app.apiKey(['admin']);
      const created = await api(app, 'POST', '/api/v1/smtp-servers', adminKey, {
        name: 'Relay',
        fromAddress: 'notify@example.com',
        host: 'smtp.example.com',
        port: 587,
        tls: true,
        authMethod: 'basic',
        username: 'relay',
        password: 'the stored relay password',
      });
      expect(created.status, created.text).toBe(201);
      const id = created.body.id as string;
      const moved = await api(app, 'PATCH', `/api/v1/smtp-servers/${id}`, adminKey, { host: 'smtp.attacker.example' });
      expect(moved.status, moved.text).toBe(400);
      expect(moved.text).toContain('password');
      expect((await api(app, 'GET', `/api/v1/smtp-servers/${id}`, adminKey)).body.host).toBe('smtp.example.com');
      // Other edits keep the password as before; a new host with a new password is fine.
      expect((await api(app, 'PATCH', `/api/v1/smtp-servers/${id}`, adminKey, { port: 2525 })).status).toBe(200);
      const withPassword = await api(app, 'PATCH', `/api/v1/smtp-servers/${id}`, adminKey, {
        host: 'smtp2.example.com',
        changePassword: true,
        password: 'a new password',
      });
      expect(withPassword.status, withPassword.text).toBe(200);
      expect(withPassword.body.host).toBe('smtp2.example.com');

      // The same on the HTML form of a sysadmin.
      const s = await app.browserSession('sysadmin');
      const page = await s.postForm(`/admin/smtp-servers/${id}`, {
        name: 'Relay',
        fromAddress: 'notify@example.com',
        host: 'evil.example',
        port: '2525',
        tls: 'on',
        authMethod: 'basic',
        username: 'relay',
      });
      expect(page.res.status).toBe(400);
      expect((await api(app, 'GET', `/api/v1/smtp-servers/${id}`, adminKey)).body.host).toBe('smtp2.example.com');
    });
  });
}

describe('log redaction', () => {
  it('takes linear time on pathological input (no quadratic scan of "user=" without a separator)', () => {
    const input = 'user='.repeat(20_000); // 100 kB, e.g. a request path or an SMTP reply in a log line
    const started = performance.now();
    redactString(input);
    expect(performance.now() - started).toBeLessThan(200);
    const line = `user=a@example.com\x01auth=Bearer ya29.secret\x01\x01`;
    expect(redactString(`x ${line} y`)).not.toContain('ya29.secret');
    expect(redactString(`x user=a@example.com\x01auth=Bearer \x01\x01 y`)).toBe('x [redacted] y');
  });
});

describe('authorization matrix (file store): admin role, send-scoped keys, anonymous and cross-site posts', () => {
  let app: TestApp;
  let ids: { server: string; integration: string; key: string; message: string };
  let sendKey: string;
  beforeAll(async () => {
    app = await startTestApp();
    const adminKey = await app.apiKey(['admin']);
    sendKey = await app.apiKey(['send'], 'sender A');
    const server = await api(app, 'POST', '/api/v1/smtp-servers', adminKey, {
      name: 'Sink',
      fromAddress: 'notify@example.com',
      host: '127.0.0.1',
      port: 2525,
      isDefault: true,
    });
    const integration = await api(app, 'POST', '/api/v1/oauth-integrations', adminKey, {
      name: 'G',
      provider: 'google',
      clientId: 'c',
      clientSecret: 's',
    });
    const key = await api(app, 'POST', '/api/v1/api-keys', adminKey, { name: 'victim', scopes: ['admin'] });
    const message = await api(app, 'POST', '/api/v1/messages', sendKey, {
      to: 'a@example.com',
      subject: 'hi',
      text: 'x',
    });
    expect([server.status, integration.status, key.status, message.status]).toEqual([201, 201, 201, 202]);
    ids = {
      server: server.body.id as string,
      integration: integration.body.id as string,
      key: key.body.id as string,
      message: message.body.id as string,
    };
  });
  afterAll(async () => {
    await app?.close();
  });

  const sysadminPosts = (i: typeof ids): [string, Record<string, string>][] => [
    ['/admin/smtp-servers', { name: 'x', fromAddress: 'a@example.com', host: 'h.example.com' }],
    [`/admin/smtp-servers/${i.server}`, { name: 'renamed', fromAddress: 'a@example.com', host: '127.0.0.1' }],
    [`/admin/smtp-servers/${i.server}/test`, {}],
    [`/admin/smtp-servers/${i.server}/resume`, {}],
    [`/admin/smtp-servers/${i.server}/delete`, {}],
    [`/admin/smtp-servers/${i.server}/authorize`, {}],
    [`/admin/smtp-servers/${i.server}/disconnect`, {}],
    ['/admin/oauth-integrations', { name: 'x', provider: 'google', clientId: 'c', clientSecret: 's' }],
    [`/admin/oauth-integrations/${i.integration}`, { name: 'renamed', provider: 'google', clientId: 'c' }],
    [`/admin/oauth-integrations/${i.integration}/rotate-secret`, { clientSecret: 'n' }],
    [`/admin/oauth-integrations/${i.integration}/delete`, {}],
    ['/admin/api-keys', { name: 'x', scopes: 'admin' }],
    [`/admin/api-keys/${i.key}/revoke`, {}],
    [`/admin/api-keys/${i.key}/rotate`, {}],
    ['/admin/mail-queue/flush', {}],
    [`/admin/mail-queue/${i.message}/resend`, {}],
    [`/admin/mail-queue/${i.message}/delete`, {}],
    ['/admin/sessions/revoke-all', {}],
  ];

  it('an admin (not sysadmin) gets 403 on every sysadmin page and action, and nothing changes', async () => {
    const admin = await app.browserSession('admin');
    for (const page of ['/admin/api-keys', '/admin/smtp-servers/new', '/admin/oauth-integrations/new']) {
      expect((await admin.get(page)).res.status, page).toBe(403);
    }
    for (const [path, fields] of sysadminPosts(ids)) {
      expect((await admin.postForm(path, fields)).res.status, path).toBe(403);
    }
    const adminKey = await app.apiKey(['admin']);
    expect((await api(app, 'GET', `/api/v1/smtp-servers/${ids.server}`, adminKey)).body.name).toBe('Sink');
    expect((await api(app, 'GET', `/api/v1/api-keys/${ids.key}`, adminKey)).body.status).toBe('active');
    expect((await api(app, 'GET', `/api/v1/oauth-integrations/${ids.integration}`, adminKey)).body.name).toBe('G');
    // What the admin role may do: read, and switch outgoing mail.
    expect((await admin.get(`/admin/smtp-servers/${ids.server}`)).res.status).toBe(200);
    expect((await admin.postForm('/admin/smtp-servers/outgoing', { enabled: 'true' })).res.status).toBe(303);
  });

  it('posts without the CSRF token (cross-site forms, /setup, /logout included) are refused', async () => {
    const sys = await app.browserSession('sysadmin');
    for (const [path, fields] of [
      ...sysadminPosts(ids),
      ['/logout', {}],
      ['/admin/smtp-servers/outgoing', { enabled: 'false' }],
    ] as [string, Record<string, string>][]) {
      expect((await sys.postForm(path, fields, { csrf: false })).res.status, path).toBe(403);
    }
    expect(
      (
        await app
          .anonymousSession()
          .postForm('/setup', { code: 'x', email: 'a@example.com', password: 'long enough password' }, { csrf: false })
      ).res.status,
    ).toBe(403);
    expect((await sys.get('/admin/api-keys')).res.status).toBe(200);
  });

  it("a send-scoped key cannot reach any admin endpoint nor read another key's message", async () => {
    const attacker = await app.apiKey(['send'], 'sender B');
    const calls: [string, string, unknown?][] = [
      ['GET', '/api/v1/smtp-servers'],
      ['POST', '/api/v1/smtp-servers', {}],
      ['GET', `/api/v1/smtp-servers/${ids.server}`],
      ['PATCH', `/api/v1/smtp-servers/${ids.server}`, { name: 'x' }],
      ['DELETE', `/api/v1/smtp-servers/${ids.server}`],
      ['POST', `/api/v1/smtp-servers/${ids.server}/test`],
      ['POST', `/api/v1/smtp-servers/${ids.server}/disconnect`],
      ['GET', `/api/v1/smtp-servers/${ids.server}/oauth`],
      ['PUT', '/api/v1/outgoing-mail', { enabled: false }],
      ['GET', '/api/v1/oauth-integrations'],
      ['POST', `/api/v1/oauth-integrations/${ids.integration}/rotate-secret`, { clientSecret: 'x' }],
      ['GET', '/api/v1/api-keys'],
      ['POST', '/api/v1/api-keys', { name: 'x', scopes: ['admin'] }],
      ['DELETE', `/api/v1/api-keys/${ids.key}`],
      ['GET', '/api/v1/audit'],
      ['GET', '/api/v1/encryption-keys'],
      ['POST', '/api/v1/encryption-keys/rotate'],
    ];
    for (const [method, path, body] of calls)
      expect((await api(app, method, path, attacker, body)).status, `${method} ${path}`).toBe(403);
    const foreign = await api(app, 'GET', `/api/v1/messages/${ids.message}`, attacker);
    expect(foreign.status).toBe(404);
    expect(foreign.text).not.toContain('a@example.com');
    expect((await api(app, 'GET', `/api/v1/messages/${ids.message}`, sendKey)).status).toBe(200);
  });
});

for (const kind of ['file', 'redis'] as const) {
  describe.skipIf(kind === 'redis' && !redisUrlForTests())(
    `an authorized mailbox stays with its host (${kind} store)`,
    () => {
      let app: TestApp;
      beforeAll(async () => {
        app = await startTestApp({ store: kind });
      });
      afterAll(async () => {
        await app?.close();
      });

      it('the host of a server holding OAuth tokens cannot change until Disconnect, whatever its auth method', async () => {
        const adminKey = await app.apiKey(['admin']);
        const integration = await api(app, 'POST', '/api/v1/oauth-integrations', adminKey, {
          name: 'G',
          provider: 'google',
          clientId: 'c',
          clientSecret: 's',
        });
        const server = await api(app, 'POST', '/api/v1/smtp-servers', adminKey, {
          name: 'Gmail',
          fromAddress: 'boss@example.com',
          host: 'smtp.gmail.com',
          protocol: 'smtps',
          port: 465,
          authMethod: 'oauth2',
          oauthIntegrationId: integration.body.id,
        });
        expect(server.status, server.text).toBe(201);
        const id = server.body.id as string;
        const now = Date.now();
        // A grant as Authorize leaves it (the token values do not matter here: they must never leave for another host).
        await app.store.put('oauth_grants', id, {
          serverId: id,
          integrationId: integration.body.id,
          mailbox: 'boss@example.com',
          subject: 'boss',
          scope: null,
          status: 'active',
          tokens: { accessToken: 'sealed-a', refreshToken: 'sealed-r', expiresAt: now + 3600_000, obtainedAt: now },
          lastRefreshAt: null,
          lastError: null,
          failures: 0,
          retryAt: null,
          authorizedAt: now,
          authorizedBy: 'sysadmin@example.com',
        });
        const moved = await api(app, 'PATCH', `/api/v1/smtp-servers/${id}`, adminKey, {
          host: 'smtp.attacker.example',
        });
        expect(moved.status, moved.text).toBe(400);
        expect(moved.text).toContain('Disconnect');
        // Switching to basic first does not get around it: the grant would come back with oauth2.
        const sideways = await api(app, 'PATCH', `/api/v1/smtp-servers/${id}`, adminKey, {
          authMethod: 'basic',
          username: 'u',
          changePassword: true,
          password: 'p',
          host: 'smtp.attacker.example',
        });
        expect(sideways.status, sideways.text).toBe(400);
        const s = await app.browserSession('sysadmin');
        const form = await s.postForm(`/admin/smtp-servers/${id}`, {
          name: 'Gmail',
          fromAddress: 'boss@example.com',
          host: 'smtp.attacker.example',
          protocol: 'smtps',
          port: '465',
          authMethod: 'oauth2',
          oauthIntegrationId: integration.body.id as string,
        });
        expect(form.res.status).toBe(400);
        expect(form.text).toContain('Disconnect');
        expect((await api(app, 'GET', `/api/v1/smtp-servers/${id}`, adminKey)).body.host).toBe('smtp.gmail.com');
        // Other edits go on as before.
        expect((await api(app, 'PATCH', `/api/v1/smtp-servers/${id}`, adminKey, { name: 'Gmail (boss)' })).status).toBe(
          200,
        );
        await app.store.delete('oauth_grants', id);
        expect(
          (await api(app, 'PATCH', `/api/v1/smtp-servers/${id}`, adminKey, { host: 'smtp.example.com' })).status,
        ).toBe(200);
      });

      it('the endpoints of a custom integration in use cannot move: refresh tokens and the client secret would go to the new token endpoint', async () => {
        const adminKey = await app.apiKey(['admin']);
        const integration = await api(app, 'POST', '/api/v1/oauth-integrations', adminKey, {
          name: 'Corporate IdP',
          provider: 'custom',
          clientId: 'c',
          clientSecret: 'the client secret',
          authorizationEndpoint: 'https://idp.example.test/authorize',
          tokenEndpoint: 'https://idp.example.test/token',
        });
        expect(integration.status, integration.text).toBe(201);
        const integrationId = integration.body.id as string;
        const now = Date.now();
        const grant: GrantRecord = {
          serverId: 'srv_uses_idp',
          integrationId,
          mailbox: 'boss@example.com',
          subject: 'boss',
          scope: null,
          status: 'active',
          tokens: { accessToken: 'sealed-a', refreshToken: 'sealed-r', expiresAt: now + 3600_000, obtainedAt: now },
          lastRefreshAt: null,
          lastError: null,
          failures: 0,
          retryAt: null,
          authorizedAt: now,
          authorizedBy: 'sysadmin@example.com',
        };
        // Written with its indexes, as the token service writes grants: the integration's grants are found by index.
        await app.store.put('oauth_grants', 'srv_uses_idp', grant, grantIndexChanges(null, grant, now));
        const moved = await api(app, 'PATCH', `/api/v1/oauth-integrations/${integrationId}`, adminKey, {
          tokenEndpoint: 'https://attacker.example/token',
        });
        expect(moved.status, moved.text).toBe(400);
        expect(moved.text).toContain('Disconnect');
        const s = await app.browserSession('sysadmin');
        const form = await s.postForm(`/admin/oauth-integrations/${integrationId}`, {
          name: 'Corporate IdP',
          provider: 'custom',
          clientId: 'c',
          issuer: 'https://attacker.example',
        });
        expect(form.res.status).toBe(400);
        expect(
          (await api(app, 'GET', `/api/v1/oauth-integrations/${integrationId}`, adminKey)).body.tokenEndpoint,
        ).toBe('https://idp.example.test/token');
        expect(
          (
            await api(app, 'PATCH', `/api/v1/oauth-integrations/${integrationId}`, adminKey, {
              name: 'Corporate IdP (mail)',
            })
          ).status,
        ).toBe(200);
        await app.store.delete('oauth_grants', 'srv_uses_idp', grantIndexChanges(grant, null, Date.now()));
        // With no mailbox left, the endpoints may move, but only with the client secret typed again for them.
        const withoutSecret = await api(app, 'PATCH', `/api/v1/oauth-integrations/${integrationId}`, adminKey, {
          tokenEndpoint: 'https://idp2.example.test/token',
        });
        expect(withoutSecret.status).toBe(400);
        expect(withoutSecret.text).toContain('clientSecret');
        expect(
          (
            await api(app, 'PATCH', `/api/v1/oauth-integrations/${integrationId}`, adminKey, {
              tokenEndpoint: 'https://idp2.example.test/token',
              clientSecret: 'a-new-secret-for-idp2',
            })
          ).status,
        ).toBe(200);
      });
    },
  );
}

describe('headers, audit targets and audited API actions (file store)', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp();
  });
  afterAll(async () => {
    await app?.close();
  });

  it('probes, metrics and static files carry nosniff and the other helmet headers', async () => {
    for (const pathname of ['/healthz', '/readyz', '/metrics', '/static/mailgate.css']) {
      const res = await fetch(`${app.url}${pathname}`);
      expect(res.headers.get('x-content-type-options'), pathname).toBe('nosniff');
      expect(res.headers.get('referrer-policy'), pathname).toBe('no-referrer');
    }
  });

  it('a password typed into the email field of the login form never reaches the audit log', async () => {
    const typedAsEmail = 'CANARY-password-typed-as-email';
    const s = app.anonymousSession();
    const { res } = await s.postForm('/login', { email: typedAsEmail, password: 'whatever-1234' });
    expect(res.status).toBe(401);
    const page = await app.services.audit.list({ limit: 20 });
    const text = JSON.stringify(page);
    expect(text).toContain('auth.login');
    expect(text).toContain('(not an email address)');
    expect(text.toLowerCase()).not.toContain(typedAsEmail.toLowerCase());
  });

  it('resuming a server through the API is audited like the page', async () => {
    const key = await app.apiKey(['admin']);
    const created = await api(app, 'POST', '/api/v1/smtp-servers', key, {
      name: 'r',
      fromAddress: 'a@example.com',
      host: 'smtp.example.com',
      tls: true,
    });
    expect(created.status, created.text).toBe(201);
    const resumed = await api(app, 'POST', `/api/v1/smtp-servers/${String(created.body.id)}/resume`, key);
    expect(resumed.status, resumed.text).toBe(200);
    const page = JSON.stringify(await app.services.audit.list({ limit: 20 }));
    expect(page).toContain('smtp_server.resume');
    expect(page).toContain(`smtp_server:${String(created.body.id)}`);
  });
});

describe('probes answer anyone, so /metrics takes a token and /readyz names no record (file store)', () => {
  const token = randomBytes(24).toString('base64url');
  let app: TestApp;
  let tokenDir: string;
  beforeAll(async () => {
    tokenDir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-metrics-token-'));
    const tokenFile = path.join(tokenDir, 'metrics-token');
    await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
    app = await startTestApp({ env: { MAILGATE_METRICS_TOKEN_FILE: tokenFile } });
  });
  afterAll(async () => {
    await app?.close();
    await rm(tokenDir, { recursive: true, force: true });
  });

  it('/metrics with MAILGATE_METRICS_TOKEN(_FILE) set answers only Authorization: Bearer <token>', async () => {
    const scrape = (authorization?: string) =>
      fetch(`${app.url}/metrics`, authorization === undefined ? {} : { headers: { authorization } });
    for (const wrong of [
      undefined,
      'Bearer',
      `Bearer ${token.slice(0, -1)}`,
      `Bearer ${token}x`,
      `Basic ${token}`,
      `Bearer ${token} ${token}`,
    ]) {
      const res = await scrape(wrong);
      expect(res.status, String(wrong)).toBe(401);
      expect(res.headers.get('www-authenticate'), String(wrong)).toMatch(/^Bearer /);
      expect(await res.text(), String(wrong)).not.toContain('mailgate_http_requests_total');
    }
    const ok = await scrape(`Bearer ${token}`);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain('mailgate_http_requests_total');
    // The probes a load balancer asks stay open.
    expect((await fetch(`${app.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${app.url}/readyz`)).status).toBe(200);
  });

  it('/readyz says ready and counts warnings by kind, without integration or server ids', async () => {
    const adminKey = await app.apiKey(['admin']);
    const soon = new Date(Date.now() + 3 * 86_400_000).toISOString().slice(0, 10);
    const ids: string[] = [];
    for (const name of ['first', 'second']) {
      const created = await api(app, 'POST', '/api/v1/oauth-integrations', adminKey, {
        name,
        provider: 'google',
        clientId: `client-${name}`,
        clientSecret: 'client-secret-value',
        secretExpiresAt: soon,
      });
      expect(created.status, created.text).toBe(201);
      ids.push(String(created.body.id));
    }
    const ready = await fetch(`${app.url}/readyz`);
    const text = await ready.text();
    expect(ready.status).toBe(200);
    const body = JSON.parse(text) as {
      status: string;
      checks: { oauth: { detail: { warnings: { kind: string; count: number }[] } } };
    };
    expect(body.status).toBe('ready');
    expect(body.checks.oauth.detail.warnings).toContainEqual({ kind: 'secret_expiring', count: 2 });
    for (const id of ids) expect(text).not.toContain(id);
    expect(text).not.toContain('oauth_integration:');
  });
});

/** Sealed by the release before the sealed-field registry, for smtp_servers/srv-legacy#password with this key. */
const LEGACY_KEY = { id: 'legacy', key: Buffer.alloc(32, 7) };
const LEGACY_SEALED = 'mg1.legacy.CFBMbFXwiYhvU1DA.VQ5iRuU09c8zyCScFTLI08W-XVo.1bRnmVkdQZrshG0Vh8Rtcg';

for (const kind of ['file', 'redis'] as const) {
  describe.skipIf(kind === 'redis' && !redisUrlForTests())(
    `text shaped like a sealed value is not key material (${kind} store)`,
    () => {
      let app: TestApp;
      let adminKey: string;
      let sendKey: string;
      beforeAll(async () => {
        app = await startTestApp({ store: kind });
        adminKey = await app.apiKey(['admin']);
        sendKey = await app.apiKey(['send']);
        const server = await api(app, 'POST', '/api/v1/smtp-servers', adminKey, {
          name: 'Relay',
          fromAddress: 'notify@example.com',
          host: 'smtp.example.com',
          tls: true,
        });
        expect(server.status, server.text).toBe(201);
      });
      afterAll(async () => {
        await app?.close();
      });

      const keyIds = async () => {
        const res = await api(app, 'GET', '/api/v1/encryption-keys', adminKey);
        expect(res.status, res.text).toBe(200);
        return res.body as { sealedValues: number; keys: { id: string; values: number }[] };
      };

      it('a send-only key cannot make a key id appear nor stop the next start with a message shaped like a sealed value', async () => {
        const before = await keyIds();
        const forged = 'mg1.ghost.AAAA.BBBB.CCCC';
        const sent = await api(app, 'POST', '/api/v1/messages', sendKey, {
          to: 'bob@example.net',
          subject: forged,
          text: forged,
          html: `<p>${forged}</p>`,
        });
        expect(sent.status, sent.text).toBe(202);
        const stored = await app.store.get('messages', sent.body.id as string);
        expect(JSON.stringify(stored?.value)).toContain(forged);

        const after = await keyIds();
        expect(after.keys.map((k) => k.id)).toEqual(['t1']);
        expect(after.sealedValues).toBe(before.sealedValues);
        // The check src/main.ts runs before it listens, on this same store: every instance would run it at its next start.
        await expect(assertAllKeysPresent(app.store, app.services.keyring)).resolves.toMatchObject({
          perKey: { t1: before.sealedValues },
        });
      });

      it('a value sealed in the format of earlier releases still opens from its sealed field and is counted; the same string in a message is not', async () => {
        const sent = await api(app, 'POST', '/api/v1/messages', sendKey, {
          to: 'bob@example.net',
          subject: 'legacy',
          text: LEGACY_SEALED,
        });
        expect(sent.status, sent.text).toBe(202);
        await app.store.put('smtp_servers', 'srv-legacy', {
          name: 'Legacy',
          fromAddress: 'old@example.com',
          host: 'smtp.example.com',
          port: 587,
          tls: true,
          authMethod: 'basic',
          username: 'u',
          password: LEGACY_SEALED,
        });
        try {
          const withLegacyKey = new Keyring([LEGACY_KEY]);
          expect(
            withLegacyKey.open(LEGACY_SEALED, { collection: 'smtp_servers', id: 'srv-legacy', field: 'password' }),
          ).toBe('legacy-smtp-password');
          const usage = await keyUsage(app.store, withLegacyKey);
          expect(usage.perKey.legacy).toBe(1);
          // Without the legacy key the start-up check refuses, naming the sealed field, not the message.
          const refusal = await assertAllKeysPresent(app.store, app.services.keyring).catch((e: unknown) => e);
          expect(refusal).toBeInstanceOf(MissingEncryptionKeyError);
          expect((refusal as MissingEncryptionKeyError).missing).toEqual([
            { keyId: 'legacy', values: 1, example: 'smtp_servers/srv-legacy#password' },
          ]);
          // Rotation re-seals it under the active key, like any other stored secret.
          const rotated = await rotateKeys(app.store, new Keyring([{ id: 'next', key: randomBytes(32) }, LEGACY_KEY]));
          expect(rotated.failures).toEqual([]);
          expect(rotated.perKeyAfter).toMatchObject({ next: 1, legacy: 0 });
        } finally {
          await app.store.delete('smtp_servers', 'srv-legacy');
        }
        const message = await app.store.get<{ text?: string }>('messages', sent.body.id as string);
        expect(JSON.stringify(message?.value)).toContain(LEGACY_SEALED);
      });
    },
  );
}
