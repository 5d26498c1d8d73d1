import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type HttpSession, type TestApp } from '../fakes/app.js';
import { startTestSmtp, type TestSmtp } from '../fakes/smtp-server.js';

/**
 * The JSON routes that test unsaved values (test, test-email), the honest state of each server in the API and
 * the list, the banner while outgoing mail is disabled, post/redirect/get and the confirmation steps.
 */

const PASSWORD = 'state relay pw 2718';
type Json = Record<string, unknown>;

describe('SMTP server tests, state and safe actions', () => {
  let app: TestApp;
  let smtp: TestSmtp;
  let key: string;
  let sys: HttpSession;
  let basicId: string;

  async function api(method: string, path: string, body?: unknown, lang?: string) {
    const res = await fetch(`${app.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(lang ? { 'accept-language': lang } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : {}) as Json };
  }
  const relay = (extra: Json = {}) => ({
    name: 'State relay',
    fromAddress: 'notify@example.com',
    protocol: 'smtp',
    host: '127.0.0.1',
    port: smtp.port,
    authMethod: 'basic',
    username: 'relay',
    password: PASSWORD,
    ...extra,
  });
  const stateOf = async (id: string, lang?: string) =>
    (await api('GET', `/api/v1/smtp-servers/${id}`, undefined, lang)).body.state as Json;

  beforeAll(async () => {
    smtp = await startTestSmtp({ starttls: false, allowInsecureAuth: true, auth: { user: 'relay', pass: PASSWORD } });
    app = await startTestApp();
    key = await app.apiKey(['admin']);
    sys = await app.browserSession('sysadmin');
    const created = await api('POST', '/api/v1/smtp-servers', relay());
    expect(created.status).toBe(201);
    basicId = created.body.id as string;
  });

  afterAll(async () => {
    await app?.close();
    await smtp?.close();
  });

  it('POST /api/v1/smtp-servers/test tests unsaved values and stores nothing', async () => {
    const before = (await app.services.mail.servers.list()).length;
    const ok = await api('POST', '/api/v1/smtp-servers/test', relay({ name: 'Never saved' }));
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ ok: true });
    expect(typeof ok.body.durationMs).toBe('number');
    expect((ok.body.transcript as string[]).join('\n')).toContain('C: AUTH PLAIN ****');
    expect(JSON.stringify(ok.body)).not.toContain(PASSWORD);
    expect((await app.services.mail.servers.list()).length).toBe(before);
  });

  it('a failed test: code, English hint; the hint follows Accept-Language, the code stays English', async () => {
    const en = await api('POST', '/api/v1/smtp-servers/test', relay({ password: 'wrong' }));
    expect(en.body).toMatchObject({ ok: false, code: 'auth_failed', responseCode: 535 });
    expect(en.body.hint).toMatch(/user name or password/);
    const ja = await api('POST', '/api/v1/smtp-servers/test', relay({ password: 'wrong' }), 'ja');
    expect(ja.body.code).toBe('auth_failed');
    expect(ja.body.hint).toContain('ユーザー名またはパスワード');
  });

  it('unsaved values go through the egress policy: a link-local address is never reached', async () => {
    const r = await api(
      'POST',
      '/api/v1/smtp-servers/test',
      relay({ host: '169.254.169.254', port: 25, authMethod: 'none' }),
    );
    expect(r.body).toMatchObject({ ok: false, code: 'egress_denied' });
  });

  it('with id: the stored password is reused, but never sent to another host', async () => {
    const { password: _p, ...noPassword } = relay();
    expect((await api('POST', '/api/v1/smtp-servers/test', { ...noPassword, id: basicId })).body.ok).toBe(true);
    const moved = await api('POST', '/api/v1/smtp-servers/test', { ...noPassword, id: basicId, host: 'localhost' });
    expect(moved.status).toBe(400);
    expect((moved.body.error as Json).code).toBe('validation_failed');
    expect(((moved.body.error as Json).details as Json[])[0]).toMatchObject({ field: 'password' });
  });

  it('POST /api/v1/smtp-servers/test-email sends one message to testRecipient', async () => {
    const count = smtp.messages.length;
    const r = await api('POST', '/api/v1/smtp-servers/test-email', { ...relay(), testRecipient: 'ops@example.net' });
    expect(r.status).toBe(200);
    expect(r.body.ok).toBe(true);
    expect(typeof r.body.messageId).toBe('string');
    await smtp.waitFor(count + 1);
    expect(smtp.messages.at(-1)!.to).toEqual(['ops@example.net']);
    const missing = await api('POST', '/api/v1/smtp-servers/test-email', relay());
    expect(missing.status).toBe(400);
    expect(((missing.body.error as Json).details as Json[])[0]).toMatchObject({ field: 'testRecipient' });
    const failed = await api('POST', '/api/v1/smtp-servers/test-email', {
      ...relay({ password: 'wrong' }),
      testRecipient: 'ops@example.net',
    });
    expect(failed.body).toMatchObject({ ok: false, code: 'auth_failed' });
    expect(typeof failed.body.hint).toBe('string');
  });

  it('state: ok, then test_failed after a failed test of the saved values, shown in the list; a save forgets it', async () => {
    expect(await stateOf(basicId)).toEqual({
      code: 'ok',
      message: 'The server is ready to send.',
      action: 'Nothing to do.',
    });
    await api('PATCH', `/api/v1/smtp-servers/${basicId}`, { changePassword: true, password: 'now wrong' });
    expect((await api('POST', `/api/v1/smtp-servers/${basicId}/test`)).body.ok).toBe(false);
    expect(await stateOf(basicId)).toMatchObject({
      code: 'test_failed',
      message: expect.stringContaining('auth_failed'),
    });
    const list = await sys.get('/admin/smtp-servers');
    expect(list.text).toMatch(/data-state="test_failed"[^>]*>Last test failed</);
    const items = (await api('GET', '/api/v1/smtp-servers')).body.items as Json[];
    expect((items.find((i) => i.id === basicId)!.state as Json).code).toBe('test_failed');
    await api('PATCH', `/api/v1/smtp-servers/${basicId}`, { changePassword: true, password: PASSWORD });
    expect((await stateOf(basicId)).code).toBe('ok');
  });

  it('state: paused wins over a failed test; message in Japanese with Accept-Language ja', async () => {
    await app.services.mail.servers.pause(basicId, { reason: 'credentials rejected', code: 'auth_failed' });
    const ja = await stateOf(basicId, 'ja');
    expect(ja.code).toBe('paused');
    expect(ja.message).toContain('資格情報を拒否');
    // The page gives the pause's diagnosis in Japanese too, by its code.
    const page = await sys.fetch(`/admin/smtp-servers/${basicId}`, { headers: { 'accept-language': 'ja' } });
    const html = await page.text();
    expect(html).toContain('サーバーがユーザー名またはパスワードを拒否しました');
    expect(html).not.toContain('credentials rejected');
    await app.services.mail.servers.unpause(basicId);
  });

  it('an OAuth server nobody authorized is "Not authorized" with one action, never green; a missing integration is misconfigured', async () => {
    const integration = await api('POST', '/api/v1/oauth-integrations', {
      name: 'Google',
      provider: 'google',
      clientId: 'client',
      clientSecret: 'client secret value',
    });
    expect(integration.status).toBe(201);
    const oauth = await api('POST', '/api/v1/smtp-servers', {
      name: 'OAuth box',
      fromAddress: 'box@example.com',
      serviceProvider: 'gmail',
      authMethod: 'oauth2',
      oauthIntegrationId: integration.body.id,
    });
    expect(oauth.status).toBe(201);
    const id = oauth.body.id as string;
    expect(await stateOf(id)).toEqual({
      code: 'not_authorized',
      message: 'No mailbox is authorized yet: mail for this server is held.',
      action: 'Press Authorize on the server page.',
    });
    const list = await sys.get('/admin/smtp-servers');
    const row = list.text.slice(list.text.indexOf(`data-server-id="${id}"`));
    const cell = row.slice(row.indexOf('class="state"'), row.indexOf('</td>', row.indexOf('class="state"')));
    expect(cell).toContain('Not authorized');
    expect(cell).toContain(`href="/admin/smtp-servers/${id}#oauth">Press Authorize on the server page.</a>`);
    expect(cell).not.toContain('badge-ok');
    // Test connection agrees with the state: not authorized, not "no longer valid".
    const tested = await api('POST', `/api/v1/smtp-servers/${id}/test`);
    expect(tested.body).toMatchObject({ ok: false, code: 'oauth_not_authorized' });
    expect(tested.body.hint).not.toMatch(/no longer valid/);
    // A test with the stored server's id never sends its mailbox's tokens to another host.
    const elsewhere = await api('POST', '/api/v1/smtp-servers/test', { id, host: '127.0.0.1' });
    expect(elsewhere.status).toBe(400);
    expect(((elsewhere.body.error as Json).details as Json[])[0]).toMatchObject({ field: 'host' });
    const page = await sys.get(`/admin/smtp-servers/${id}`);
    expect(page.text).toContain('data-state="not_authorized"');
    expect(page.text).not.toContain('no longer valid');
    const orphan = await api('POST', '/api/v1/smtp-servers', {
      name: 'Orphan',
      fromAddress: 'box@example.com',
      serviceProvider: 'gmail',
      authMethod: 'oauth2',
      oauthIntegrationId: 'oi_gone',
    });
    expect((await stateOf(orphan.body.id as string)).code).toBe('misconfigured');
    // An integration whose client secret has expired is a problem of the integration, in the list and on the page.
    const expired = await api('POST', '/api/v1/oauth-integrations', {
      name: 'Expired',
      provider: 'google',
      clientId: 'client',
      clientSecret: 'client secret value',
      secretExpiresAt: '2020-01-31',
    });
    expect(expired.status).toBe(201);
    const stale = await api('POST', '/api/v1/smtp-servers', {
      name: 'Stale box',
      fromAddress: 'box@example.com',
      serviceProvider: 'gmail',
      authMethod: 'oauth2',
      oauthIntegrationId: expired.body.id,
    });
    expect((await stateOf(stale.body.id as string)).code).toBe('misconfigured');
    expect(
      await api('PATCH', `/api/v1/oauth-integrations/${String(expired.body.id)}`, { secretExpiresAt: null }),
    ).toMatchObject({ status: 200 });
    expect((await stateOf(stale.body.id as string)).code).toBe('not_authorized');
  });

  it('Disable outgoing mail: a confirmation step, then a warning (not a success) and a banner on every page', async () => {
    const ask = await sys.postForm('/admin/smtp-servers/outgoing', { enabled: 'false' });
    expect(ask.res.status).toBe(200);
    expect(ask.text).toContain('Disable outgoing mail for every server?');
    expect(ask.text).toContain('name="confirmed" value="yes"');
    expect((await app.services.mail.servers.settings()).outgoingEnabled).toBe(true);
    const done = await sys.postForm('/admin/smtp-servers/outgoing', { enabled: 'false', confirmed: 'yes' });
    expect(done.res.status).toBe(303);
    const list = await sys.get('/admin/smtp-servers');
    expect(list.text).toContain('flash flash-warning');
    expect(list.text).not.toContain('flash flash-ok');
    const other = await sys.get('/admin/api-keys');
    expect(other.text).toMatch(
      /class="banner banner-warning"[^>]*>Outgoing mail is disabled[^<]*<a href="\/admin\/smtp-servers#outgoing">Enable outgoing mail<\/a>/,
    );
    expect((await stateOf(basicId)).code).toBe('sending_disabled');
    // Enabling needs no confirmation and removes the banner.
    expect((await sys.postForm('/admin/smtp-servers/outgoing', { enabled: 'true' })).res.status).toBe(303);
    expect((await sys.get('/admin/api-keys')).text).not.toContain('banner-warning');
  });

  it('post/redirect/get for Add and Update; Delete asks first and acts only when confirmed', async () => {
    const form = {
      name: 'PRG relay',
      fromAddress: 'prg@example.com',
      serviceProvider: 'custom',
      protocol: 'smtp',
      host: '127.0.0.1',
      port: String(smtp.port),
      authMethod: 'none',
    };
    const added = await sys.postForm('/admin/smtp-servers', form);
    expect(added.res.status).toBe(303);
    const location = added.res.headers.get('location')!;
    const id = location.split('/').pop()!;
    const { serviceProvider: _sp, ...editForm } = form;
    const updated = await sys.postForm(location, { ...editForm, name: 'PRG relay 2' });
    expect(updated.res.status).toBe(303);
    expect(updated.res.headers.get('location')).toBe(location);
    const ask = await sys.postForm(`${location}/delete`, {});
    expect(ask.res.status).toBe(200);
    expect(ask.text).toContain('Delete the SMTP server &quot;PRG relay 2&quot;?');
    expect((await app.services.mail.servers.get(id)).name).toBe('PRG relay 2');
    const deleted = await sys.postForm(`${location}/delete`, { confirmed: 'yes' });
    expect(deleted.res.status).toBe(303);
    expect(deleted.res.headers.get('location')).toBe('/admin/smtp-servers');
    await expect(app.services.mail.servers.get(id)).rejects.toThrow();
  });
});
