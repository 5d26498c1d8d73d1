import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../fakes/app.js';

/** Pages and API messages follow the reader's language; API error codes stay English. */

describe('language negotiation', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp();
  });
  afterAll(async () => {
    await app?.close();
  });

  it('a page follows Accept-Language and the layout says which language it is in', async () => {
    const browser = await app.browserSession('sysadmin');
    const ja = await browser.fetch('/admin/smtp-servers', { headers: { 'accept-language': 'ja-JP,ja;q=0.9' } });
    const html = await ja.text();
    expect(html).toContain('<html lang="ja">');
    expect(html).toContain('メールキュー');
    const en = await browser.fetch('/admin/smtp-servers', { headers: { 'accept-language': 'en-US' } });
    expect(await en.text()).toContain('<html lang="en">');
  });

  it('the switch sets a remembered cookie and returns to a local page only', async () => {
    const res = await fetch(`${app.url}/language/ja?next=/admin/audit`, { redirect: 'manual' });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/admin/audit');
    expect(res.headers.getSetCookie().join()).toMatch(/mailgate_lang=ja/);
    const offsite = await fetch(`${app.url}/language/ja?next=//evil.example/`, { redirect: 'manual' });
    expect(offsite.headers.get('location')).toBe('/admin/smtp-servers');
    const unknown = await fetch(`${app.url}/language/xx?next=/login`, { redirect: 'manual' });
    expect(unknown.headers.getSetCookie()).toEqual([]);
    const login = await fetch(`${app.url}/login`, { headers: { cookie: 'mailgate_lang=ja', 'accept-language': 'en' } });
    expect(await login.text()).toContain('<html lang="ja">');
  });

  it('an API error keeps its English code and translates its message', async () => {
    const res = await fetch(`${app.url}/api/v1/api-keys`, { headers: { 'accept-language': 'ja' } });
    expect(res.status).toBe(401);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('invalid_api_key');
    expect(body.error.message).toContain('API キー');
    const en = (await (await fetch(`${app.url}/api/v1/api-keys`)).json()) as { error: { message: string } };
    expect(en.error.message).toContain('The API key');
  });
});
