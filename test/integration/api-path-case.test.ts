import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../fakes/app.js';

/** Express routes `/API/v1/...` like `/api/v1/...`; the session, CSRF and error layers must agree with it. */

describe('the API under another spelling of /api (file store)', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp();
  });
  afterAll(async () => {
    await app?.close();
  });

  const json = { 'content-type': 'application/json' };

  it('gets API treatment: the key decides, never a session or a CSRF check', async () => {
    const admin = await app.apiKey(['admin']);
    for (const prefix of ['/API/v1', '/Api/V1', '/api/V1']) {
      const created = await fetch(`${app.url}${prefix}/api-keys`, {
        method: 'POST',
        headers: { ...json, authorization: `Bearer ${admin}` },
        body: JSON.stringify({ name: `made via ${prefix}`, scopes: ['send'] }),
      });
      expect(created.status).toBe(201);
      expect(created.headers.getSetCookie()).toEqual([]);
      const anonymous = await fetch(`${app.url}${prefix}/api-keys`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ name: 'x', scopes: ['send'] }),
      });
      expect(anonymous.status).toBe(401);
      expect(((await anonymous.json()) as { error: { code: string } }).error.code).toBe('invalid_api_key');
    }
    expect((await app.services.apiKeys.list()).filter((k) => k.name.startsWith('made via'))).toHaveLength(3);
  });

  it('a logged-in browser with its CSRF token gets no further than without: the key is checked', async () => {
    const browser = await app.browserSession('sysadmin');
    const token = await browser.refreshCsrf();
    const before = (await app.services.apiKeys.list()).length;
    const res = await browser.fetch('/API/v1/api-keys', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrf-token': token },
      body: new URLSearchParams({ _csrf: token, name: 'via session', scopes: 'admin' }),
    });
    expect(res.status).toBe(401);
    expect((await app.services.apiKeys.list()).length).toBe(before);
    const read = await browser.fetch('/API/v1/audit');
    expect(read.status).toBe(401);
    expect(read.headers.get('content-type')).toMatch(/json/);
  });

  it("answers errors in the API's JSON shape", async () => {
    const res = await fetch(`${app.url}/API/v1/no-such-thing`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('not_found');
  });
});
