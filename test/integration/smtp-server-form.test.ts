import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type HttpSession, type TestApp } from '../fakes/app.js';
import { startTestSmtp, type TestSmtp } from '../fakes/smtp-server.js';

/**
 * The add/edit server form over HTTP (no JavaScript): required fields in one round with labels and ARIA, the
 * typed password never echoed, provider presets filled by a re-rendered form, Test connection and Send test
 * email on unsaved values with post/redirect/get, and the JavaScript path's JSON answer.
 */

const PASSWORD = 'form relay pw 4711';
const RAW = /expected string|received undefined|Invalid input|<code>\w+<\/code>/;

describe('SMTP server form', () => {
  let app: TestApp;
  let smtp: TestSmtp;
  let sys: HttpSession;

  beforeAll(async () => {
    smtp = await startTestSmtp({ starttls: false, allowInsecureAuth: true, auth: { user: 'relay', pass: PASSWORD } });
    app = await startTestApp();
    sys = await app.browserSession('sysadmin');
  });

  afterAll(async () => {
    await app?.close();
    await smtp?.close();
  });

  const countServers = async () => (await app.services.mail.servers.list()).length;
  const sinkFields = (extra: Record<string, string> = {}) => ({
    name: 'Form relay',
    fromAddress: 'notify@example.com',
    serviceProvider: 'custom',
    protocol: 'smtp',
    host: '127.0.0.1',
    port: String(smtp.port),
    authMethod: 'basic',
    username: 'relay',
    password: PASSWORD,
    ...extra,
  });

  it('blank required fields: every one named by its label, "Required.", tied to the field, nothing stored', async () => {
    const before = await countServers();
    const r = await sys.postForm('/admin/smtp-servers', { authMethod: 'basic', password: 'typed secret 1' });
    expect(r.res.status).toBe(400);
    expect(r.text).not.toMatch(RAW);
    for (const [field, label] of [
      ['name', 'Name'],
      ['fromAddress', 'From address'],
      ['host', 'Host name'],
      ['username', 'User name'],
    ]) {
      expect(r.text).toContain(`<a href="#${field}">${label}</a>: Required.`);
      expect(r.text).toMatch(
        new RegExp(`id="${field}"[^>]*aria-invalid="true"[^>]*aria-describedby="[^"]*${field}-error`),
      );
      expect(r.text).toContain(`<p class="field-error" id="${field}-error">Required.</p>`);
    }
    // The typed password is not sent back; the page says to type it again, next to the field.
    expect(r.text).not.toContain('typed secret 1');
    expect(r.text).toMatch(/id="password"[^>]*value=""[^>]*aria-describedby="password-hint"/);
    expect(r.text).toContain('type it again');
    expect(await countServers()).toBe(before);
  });

  it('in Japanese: labels from the reference page and a plain required message', async () => {
    await sys.refreshCsrf();
    const ja = await sys.fetch('/admin/smtp-servers', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'accept-language': 'ja' },
      body: new URLSearchParams({ _csrf: sys.csrf ?? '' }),
    });
    const text = await ja.text();
    expect(ja.status).toBe(400);
    expect(text).toContain('<a href="#host">ホスト名</a>: 必須項目です。');
    expect(text).toContain('<a href="#fromAddress">送信元アドレス</a>: 必須項目です。');
    for (const label of [
      '名前',
      '説明',
      'E メールの接頭語',
      'サービスプロバイダー',
      'プロトコル',
      'SMTP ポート',
      '認証方式',
      'テスト接続',
    ])
      expect(text).toContain(label);
    expect(text).not.toMatch(RAW);
  });

  it('blank fields and a rule between fields come in the same round', async () => {
    const r = await sys.postForm('/admin/smtp-servers', sinkFields({ name: '', host: 'smtp.example.com' }));
    expect(r.res.status).toBe(400);
    expect(r.text).toContain('<a href="#name">Name</a>: Required.');
    expect(r.text).toContain('<a href="#tls">TLS (require STARTTLS)</a>: Authentication needs TLS');
  });

  it('a bad port: a plain message with the label, not the schema text', async () => {
    const r = await sys.postForm('/admin/smtp-servers', sinkFields({ port: 'seventy' }));
    expect(r.res.status).toBe(400);
    expect(r.text).toContain('<a href="#port">SMTP port</a>: Enter a port number from 1 to 65535');
    expect(r.text).not.toMatch(RAW);
  });

  it('a provider without JavaScript: the form comes back with its values filled, then saves them', async () => {
    const before = await countServers();
    const fields = { name: 'Gmail box', fromAddress: 'me@example.com', serviceProvider: 'gmail', authMethod: 'none' };
    const r = await sys.postForm('/admin/smtp-servers', { ...fields, protocol: 'smtp', host: 'typed.example.com' });
    expect(r.res.status).toBe(200);
    expect(r.text).toContain('id="preset-notice"');
    expect(r.text).toMatch(/id="host"[^>]*value="smtp\.gmail\.com"/);
    expect(r.text).toMatch(/id="port"[^>]*value="465"/);
    expect(r.text).toMatch(/<option value="smtps" selected>/);
    expect(await countServers()).toBe(before);
    const saved = await sys.postForm('/admin/smtp-servers', {
      ...fields,
      protocol: 'smtps',
      host: 'smtp.gmail.com',
      port: '465',
    });
    expect(saved.res.status).toBe(303);
    const id = saved.res.headers.get('location')!.split('/').pop()!;
    expect((await app.services.mail.servers.get(id)).host).toBe('smtp.gmail.com');
    await app.services.mail.servers.remove(id, { actor: { type: 'system', id: 'test' } });
  });

  it('only the fields the method needs: no password on none/oauth2, no integration picker on basic', async () => {
    const page = (await sys.get('/admin/smtp-servers/new')).text;
    expect(page).toMatch(/<div class="field" data-auth="basic" hidden>\s*<label for="password">/);
    expect(page).toMatch(/<div class="field" data-auth="oauth2" hidden>\s*<label for="oauthIntegrationId">/);
    const basic = await sys.postForm('/admin/smtp-servers', sinkFields({ name: '' }));
    expect(basic.text).toMatch(/<div class="field" data-auth="basic">\s*<label for="password">/);
    expect(basic.text).toMatch(/<div class="field" data-auth="oauth2" hidden>/);
    expect(page).toContain('<script src="/static/server-form.js" defer></script>');
  });

  it('Test connection on the unsaved form: post/redirect/get, the result once, next to the buttons', async () => {
    const before = await countServers();
    // A test needs no name: blank fields that only matter for saving do not stop it.
    const r = await sys.postForm('/admin/smtp-servers/new/test', sinkFields({ name: '' }));
    expect(r.res.status).toBe(303);
    expect(r.res.headers.get('location')).toBe('/admin/smtp-servers/new#test-connection');
    const page = (await sys.get('/admin/smtp-servers/new')).text;
    expect(page).toContain('Succeeded: connected, authenticated (basic)');
    expect(page).toMatch(/id="host"[^>]*value="127\.0\.0\.1"/);
    expect(page).not.toContain(PASSWORD);
    // The result sits inside the test panel, before the Add button.
    expect(page.indexOf('id="test-summary"')).toBeLessThan(page.indexOf('id="save"'));
    expect(page.indexOf('id="test-summary"')).toBeGreaterThan(page.indexOf('id="test-button"'));
    expect((await sys.get('/admin/smtp-servers/new')).text).not.toContain('id="test-summary"');
    expect(await countServers()).toBe(before);
    expect(smtp.authAttempts.at(-1)).toEqual({ method: 'PLAIN', user: 'relay' });
  });

  it('Send test email from the form (the JavaScript path asks for JSON): the mail arrives', async () => {
    const count = smtp.messages.length;
    const res = await sys.fetch('/admin/smtp-servers/new/test-email', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({ _csrf: sys.csrf!, ...sinkFields({ testRecipient: 'newcomer@example.net' }) }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { ok: boolean; html: string };
    expect(body.ok).toBe(true);
    expect(body.html).toContain('Test email accepted by the server for newcomer@example.net');
    await smtp.waitFor(count + 1);
    expect(smtp.messages.at(-1)!.to).toEqual(['newcomer@example.net']);
    expect(smtp.messages.at(-1)!.raw).toContain('mailgate test email');
  });

  it('Send test email without a recipient: a plain required message on that field', async () => {
    const r = await sys.postForm('/admin/smtp-servers/new/test-email', sinkFields());
    expect(r.res.status).toBe(400);
    expect(r.text).toContain('<a href="#testRecipient">Send the test email to</a>: Required.');
    expect(r.text).not.toContain(PASSWORD);
  });

  it('a wrong password: the failure, the hint and the transcript next to the buttons', async () => {
    await sys.postForm('/admin/smtp-servers/new/test', sinkFields({ password: 'wrong' }));
    const page = (await sys.get('/admin/smtp-servers/new')).text;
    expect(page).toMatch(/id="test-hint"><strong>What to do:<\/strong> The server rejected the user name or password/);
    expect(page).toContain('535');
    expect(page).toContain('auth_failed');
  });
});
