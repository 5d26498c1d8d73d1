import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServerInput } from '../../src/mail/servers.js';
import { startTestApp, type HttpSession, type TestApp } from '../fakes/app.js';
import { redisUrlForTests } from '../fakes/redis.js';

// The API key page and the policy API on a real mailgate: policy fields on the form and through
// PATCH /api/v1/api-keys/:id, post/redirect/get (a reload never creates a second key, the key is shown once),
// a confirmation step before Revoke, the SMTP settings an app needs, and the page in English and Japanese.

const system = { actor: { type: 'system' as const, id: 'test' } };
const KEY = /id="new-api-key"[^>]*value="(mgk_[A-Za-z0-9_-]{43})"/;

for (const kind of ['file', 'redis'] as const) {
  describe.skipIf(kind === 'redis' && !redisUrlForTests())(`the API key page on the ${kind} store`, () => {
    let app: TestApp;
    let admin: HttpSession;
    let adminKey: string;
    let mainServer: string;
    let otherServer: string;

    async function api(method: string, path: string, body?: unknown) {
      const res = await fetch(`${app.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    }
    const keyNamed = async (name: string) => (await app.services.apiKeys.list()).filter((k) => k.name === name);

    beforeAll(async () => {
      app = await startTestApp({
        store: kind,
        env: {
          MAILGATE_SUBMISSION_PORT: '2587',
          MAILGATE_SUBMISSION_HOST: '0.0.0.0',
          MAILGATE_BASE_URL: 'http://mail.example.test:8080',
        },
      });
      adminKey = await app.apiKey(['admin']);
      const server = async (name: string, fromAddress: string, isDefault: boolean) =>
        app.services.mail.servers.create(
          createServerInput.parse({ name, fromAddress, host: '127.0.0.1', port: 2525, authMethod: 'none', isDefault }),
          system,
        );
      mainServer = (await server('Main relay', 'notify@example.com', true)).id;
      otherServer = (await server('Other relay', 'alerts@other.example', false)).id;
      admin = await app.browserSession('sysadmin');
    });

    afterAll(async () => {
      await app?.close();
    });

    it('offers the servers in a select and creates a key with its policy; the list shows the policy', async () => {
      const page = await admin.get('/admin/api-keys');
      expect(page.text).toMatch(new RegExp(`<select id="serverId" name="serverId">`));
      expect(page.text).toContain(`<option value="${mainServer}">Main relay (${mainServer})</option>`);
      expect(page.text).toContain(`<option value="${otherServer}">`);
      const posted = await admin.postForm('/admin/api-keys', {
        name: 'ci server',
        scopes: ['send'],
        serverId: otherServer,
        allowedFrom: 'alerts@other.example, *@example.org',
        rateLimitPerMinute: '12',
      });
      expect(posted.res.status).toBe(303);
      const [key] = await keyNamed('ci server');
      expect(key?.policy).toEqual({
        serverId: otherServer,
        allowedFrom: ['alerts@other.example', '*@example.org'],
        rateLimitPerMinute: 12,
      });
      const list = await admin.get('/admin/api-keys');
      expect(list.text).toContain(`server ${otherServer}`);
      expect(list.text).toContain('from alerts@other.example, *@example.org');
      expect(list.text).toContain('12/min');
    });

    it('refuses bad policy fields naming each one, keeps what was typed, creates nothing', async () => {
      const before = (await app.services.apiKeys.list()).length;
      const r = await admin.postForm('/admin/api-keys', {
        name: 'bad policy',
        scopes: ['send'],
        serverId: 'srv_nope',
        allowedFrom: 'not-an-address',
        rateLimitPerMinute: '0',
      });
      expect(r.res.status).toBe(400);
      expect(r.text).toContain('Give addresses or *@domain entries');
      expect(r.text).toContain('Enter a whole number, 1 or more.');
      expect(r.text).toContain('value="not-an-address"');
      expect(r.text).toContain('value="bad policy"');
      const unknownServer = await admin.postForm('/admin/api-keys', {
        name: 'x',
        scopes: ['send'],
        serverId: 'srv_nope',
      });
      expect(unknownServer.res.status).toBe(400);
      expect(unknownServer.text).toContain('Choose an existing SMTP server.');
      expect((await app.services.apiKeys.list()).length).toBe(before);
    });

    it('post/redirect/get: the key is shown once after the redirect, and a reload creates no second key', async () => {
      const posted = await admin.postForm('/admin/api-keys', { name: 'prg key', scopes: ['send'] });
      expect(posted.res.status).toBe(303);
      expect(posted.res.headers.get('location')).toBe('/admin/api-keys');
      expect(posted.text).not.toMatch(/mgk_/);
      const shown = await admin.get('/admin/api-keys');
      expect(shown.res.headers.get('cache-control')).toBe('no-store');
      const key = KEY.exec(shown.text)?.[1];
      expect(key).toBeDefined();
      // The reload a browser does after the redirect is a GET: no key made, none shown again.
      const reload = await admin.get('/admin/api-keys');
      expect(reload.text).not.toContain(key!);
      expect(await keyNamed('prg key')).toHaveLength(1);
      // The key works.
      const sent = await fetch(`${app.url}/api/v1/messages/msg_none`, { headers: { authorization: `Bearer ${key}` } });
      expect(sent.status).toBe(404);
    });

    it('after a send key, shows the SMTP settings an app needs; not for an admin-only key', async () => {
      await admin.postForm('/admin/api-keys', { name: 'wiki', scopes: ['send'] });
      const page = await admin.get('/admin/api-keys');
      expect(page.text).toContain('SMTP settings for apps');
      // Bound to every address: the host name people use for mailgate.
      expect(page.text).toMatch(/id="smtp-host"[^>]*value="mail.example.test"/);
      expect(page.text).toMatch(/id="smtp-port"[^>]*value="2587"/);
      expect(page.text).toContain('STARTTLS');
      expect(page.text).toMatch(/id="smtp-user"[^>]*value="wiki"/);
      await admin.postForm('/admin/api-keys', { name: 'ops', scopes: ['admin'] });
      const adminOnly = await admin.get('/admin/api-keys');
      expect(KEY.test(adminOnly.text)).toBe(true);
      expect(adminOnly.text).not.toContain('SMTP settings for apps');
    });

    it('edits the policy on the page and through PATCH /api/v1/api-keys/:id (null clears a field)', async () => {
      const created = await api('POST', '/api/v1/api-keys', {
        name: 'edited',
        scopes: ['send'],
        rateLimitPerMinute: 5,
      });
      expect(created.status).toBe(201);
      const id = created.body.id as string;
      const form = await admin.postForm(`/admin/api-keys/${id}/policy`, {
        serverId: mainServer,
        allowedFrom: '*@example.com',
        rateLimitPerMinute: '',
      });
      expect(form.res.status).toBe(303);
      expect((await app.services.apiKeys.get(id))?.policy).toEqual({
        serverId: mainServer,
        allowedFrom: ['*@example.com'],
      });
      expect((await admin.get('/admin/api-keys')).text).toContain('The policy of &quot;edited&quot; is saved.');
      const bad = await admin.postForm(`/admin/api-keys/${id}/policy`, { serverId: 'srv_nope' });
      expect(bad.res.status).toBe(400);
      expect(bad.text).toContain('Choose an existing SMTP server.');

      const patched = await api('PATCH', `/api/v1/api-keys/${id}`, { rateLimitPerMinute: 9, allowedFrom: null });
      expect(patched.status).toBe(200);
      expect(patched.body.policy).toEqual({ serverId: mainServer, rateLimitPerMinute: 9 });
      const cleared = await api('PATCH', `/api/v1/api-keys/${id}`, { serverId: null, rateLimitPerMinute: null });
      expect(cleared.body.policy).toBeUndefined();
      expect((await api('PATCH', `/api/v1/api-keys/${id}`, { serverId: 'srv_nope' })).status).toBe(400);
      expect((await api('PATCH', `/api/v1/api-keys/${id}`, { scopes: ['admin'] })).status).toBe(400);
      expect((await api('PATCH', '/api/v1/api-keys/key_nope', { rateLimitPerMinute: 1 })).status).toBe(404);
      const audit = await app.store.readLog<{ action: string; target: string }>('audit', { limit: 100 });
      expect(
        audit.filter((e) => e.entry.action === 'api_key.update_policy' && e.entry.target === `api_key:${id}`),
      ).toHaveLength(3);
    });

    it('Revoke asks first; only the confirmed post revokes', async () => {
      const created = await api('POST', '/api/v1/api-keys', { name: 'to revoke', scopes: ['send'] });
      const id = created.body.id as string;
      const ask = await admin.postForm(`/admin/api-keys/${id}/revoke`);
      expect(ask.res.status).toBe(200);
      expect(ask.text).toContain('Revoke the API key &quot;to revoke&quot;');
      expect(ask.text).toMatch(/<button type="submit"[^>]*>Confirm<\/button>/);
      expect(ask.text).toContain('name="confirmed" value="yes"');
      expect((await app.services.apiKeys.get(id))?.status).toBe('active');
      const done = await admin.postForm(`/admin/api-keys/${id}/revoke`, { confirmed: 'yes' });
      expect(done.res.status).toBe(303);
      expect((await app.services.apiKeys.get(id))?.status).toBe('revoked');
      expect((await admin.get('/admin/api-keys')).text).toContain('is revoked.');
    });

    it('speaks Japanese when asked, English otherwise', async () => {
      const ja = await admin.get('/admin/api-keys', { headers: { 'accept-language': 'ja' } });
      expect(ja.text).toContain('<h1>API キー</h1>');
      expect(ja.text).toContain('API キーを作成');
      expect(ja.text).toContain('1 分あたりのメッセージ数');
      expect(ja.text).toContain('失効');
      const en = await admin.get('/admin/api-keys', { headers: { 'accept-language': 'fr' } });
      expect(en.text).toContain('<h1>API keys</h1>');
      expect(en.text).toContain('Create API key');
    });
  });
}

describe('the API key page without the submission port', () => {
  let app: TestApp;
  afterAll(async () => {
    await app?.close();
  });

  it('says how to turn SMTP on instead of showing settings', async () => {
    app = await startTestApp();
    const admin = await app.browserSession('sysadmin');
    await admin.postForm('/admin/api-keys', { name: 'no smtp', scopes: ['send'] });
    const page = await admin.get('/admin/api-keys');
    expect(KEY.test(page.text)).toBe(true);
    expect(page.text).toContain('set MAILGATE_SUBMISSION_PORT (for example 587)');
    expect(page.text).not.toContain('id="smtp-host"');
  });
});
