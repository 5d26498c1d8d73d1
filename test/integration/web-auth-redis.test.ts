import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpSession, startTestApp, type TestApp } from '../fakes/app.js';
import { redisUrlForTests } from '../fakes/redis.js';

/** Several instances on one Redis: shared sessions, data, revocations, rate limits; session secret rotation. */

const COOKIE = 'mailgate.sid';

function withCookie(app: TestApp, from: HttpSession): HttpSession {
  const s = new HttpSession(app.url);
  for (const [k, v] of from.cookies) s.cookies.set(k, v);
  s.csrf = from.csrf;
  return s;
}

describe.skipIf(!redisUrlForTests())('two instances on one Redis', () => {
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    a = await startTestApp({ store: 'redis', env: { MAILGATE_TRUST_PROXY: '1' } });
    b = await startTestApp({ shareWith: a });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  it('share sessions: log in on A, use the cookie (and its CSRF token) on B', async () => {
    const onA = await a.browserSession('sysadmin');
    await onA.refreshCsrf();
    const onB = withCookie(b, onA);
    const page = await onB.get('/admin/api-keys');
    expect(page.res.status).toBe(200);
    const created = await onB.postForm('/admin/api-keys', { name: 'made on B', scopes: ['send'] });
    expect(created.res.status).toBe(303);
    // Data is shared too: A lists what B created.
    expect((await a.services.apiKeys.list()).map((k) => k.name)).toContain('made on B');
    // Logging out on B ends the session on A.
    expect((await onB.postForm('/logout')).res.status).toBe(303);
    expect((await onA.fetch('/admin/audit')).status).toBe(303);
  });

  it('a key revoked on A is refused by B on the very next request', async () => {
    const admin = await a.apiKey(['admin']);
    const victim = await a.apiKey(['send', 'admin'], 'victim');
    const call = (app: TestApp, key: string) =>
      fetch(`${app.url}/api/v1/audit?limit=1`, { headers: { authorization: `Bearer ${key}` } });
    expect((await call(b, victim)).status).toBe(200);
    const id = (await b.services.apiKeys.list()).find((k) => k.name === 'victim')!.id;
    const del = await fetch(`${a.url}/api/v1/api-keys/${id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${admin}` },
    });
    expect(del.status).toBe(200);
    expect((await call(b, victim)).status).toBe(401);
  });

  it('the login limits hold across instances (Redis-backed): attempts counted on A are counted on B', async () => {
    const { email, password } = await a.createUser('admin');
    const address = `10.9.${randomBytes(1)[0]}.1`;
    const attempt = async (app: TestApp, pw: string) => {
      const s = app.anonymousSession();
      const token = await s.refreshCsrf();
      return s.fetch('/login', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': address },
        body: new URLSearchParams({ _csrf: token, email, password: pw }),
      });
    };
    // Five free failures and one spaced attempt, alternating instances; then both make this address wait.
    for (let i = 0; i < 6; i++) expect((await attempt(i % 2 ? a : b, `wrong-password-${i}`)).status).toBe(401);
    for (const app of [a, b]) {
      const res = await attempt(app, password);
      expect(res.status).toBe(429);
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    }
  });

  it('"Log out every session" on A ends sessions held on B', async () => {
    const onB = await b.browserSession('admin');
    const sysOnA = await a.browserSession('sysadmin');
    expect((await onB.fetch('/admin/audit')).status).toBe(200);
    expect((await sysOnA.postForm('/admin/sessions/revoke-all')).res.status).toBe(303);
    expect((await onB.fetch('/admin/audit')).status).toBe(303);
  });
});

describe.skipIf(!redisUrlForTests())('session secret rotation on Redis', () => {
  const oldSecret = randomBytes(32).toString('base64url');
  const newSecret = randomBytes(32).toString('base64url');
  let before: TestApp;
  const started: TestApp[] = [];
  beforeAll(async () => {
    before = await startTestApp({ store: 'redis', env: { MAILGATE_SESSION_SECRETS: oldSecret } });
    started.push(before);
  });
  afterAll(async () => {
    for (const app of started.reverse()) await app.close();
  });

  it('a cookie signed by the old secret stays valid once it is second; new cookies use the new one', async () => {
    const admin = await before.browserSession('admin');
    const rolled = await startTestApp({
      shareWith: before,
      env: { MAILGATE_SESSION_SECRETS: `${newSecret},${oldSecret}` },
    });
    started.push(rolled);
    expect((await withCookie(rolled, admin).fetch('/admin/audit')).status).toBe(200);

    // A login on the rolled instance is signed with the new secret: the old instance cannot read it.
    const fresh = await rolled.browserSession('admin');
    expect((await fresh.fetch('/admin/audit')).status).toBe(200);
    expect((await withCookie(before, fresh).fetch('/admin/audit')).status).toBe(303);

    // Once the old secret is removed, cookies signed with it stop working.
    const final = await startTestApp({ shareWith: before, env: { MAILGATE_SESSION_SECRETS: newSecret } });
    started.push(final);
    expect((await withCookie(final, admin).fetch('/admin/audit')).status).toBe(303);
    expect((await withCookie(final, fresh).fetch('/admin/audit')).status).toBe(200);
    expect(admin.cookies.get(COOKIE)).toBeTruthy();
  });
});

describe('https deployments', () => {
  it('use the __Host- cookie with Secure when MAILGATE_BASE_URL is https', async () => {
    const app = await startTestApp({
      env: { MAILGATE_BASE_URL: 'https://mailgate.example', MAILGATE_TRUST_PROXY: '1' },
    });
    try {
      const https = { 'x-forwarded-proto': 'https' };
      const s = app.anonymousSession();
      const res = await s.fetch('/login', { headers: https });
      expect(res.status).toBe(200);
      const token = /name="_csrf" value="([^"]+)"/.exec(await res.text())![1]!;
      const { email, password } = await app.createUser('admin');
      const login = await s.fetch('/login', {
        method: 'POST',
        headers: { ...https, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ _csrf: token, email, password }),
      });
      expect(login.status).toBe(303);
      for (const [name, from] of [
        ['__Host-mailgate.csrf=', res],
        ['__Host-mailgate.sid=', login],
      ] as const) {
        const cookie = from.headers.getSetCookie().find((c) => c.startsWith(name));
        expect(cookie).toBeDefined();
        expect(cookie).toMatch(/; Secure/i);
        expect(cookie).toMatch(/; Path=\//i);
        expect(cookie).not.toMatch(/Domain=/i);
      }
    } finally {
      await app.close();
    }
  });
});
