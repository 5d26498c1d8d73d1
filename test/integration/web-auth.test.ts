import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUDIT_LOG, type AuditEntry } from '../../src/admin/audit.js';
import { sessionCookieName } from '../../src/web/session.js';
import { HttpSession, startTestApp, type TestApp } from '../fakes/app.js';

/** Logins, sessions, CSRF, API keys and the audit trail, through HTTP against the real file store. */

const COOKIE = 'mailgate.sid';

async function allAudit(app: TestApp): Promise<AuditEntry[]> {
  const rows = await app.store.readLog<AuditEntry>(AUDIT_LOG, { limit: 1000 });
  return rows.map((r) => r.entry);
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(full)));
    else out.push(full);
  }
  return out;
}

describe('browser login and sessions (file store)', () => {
  let app: TestApp;
  let now = Date.now();
  beforeAll(async () => {
    app = await startTestApp({ clock: () => now });
  });
  afterAll(async () => {
    await app?.close();
  });

  it('/ and admin pages send an anonymous visitor to /login; the login page has the form', async () => {
    const s = app.anonymousSession();
    const root = await s.fetch('/');
    expect(root.status).toBe(303);
    expect(root.headers.get('location')).toBe('/login');
    const page = await s.fetch('/admin/api-keys');
    expect(page.status).toBe(303);
    expect(page.headers.get('location')).toBe('/login?next=%2Fadmin%2Fapi-keys');
    const login = await s.get('/login');
    expect(login.text).toContain('name="email"');
    expect(login.text).toContain('name="password"');
    expect(login.text).toContain('Log in</button>');
    expect(sessionCookieName(app.config)).toBe(COOKIE);
  });

  it('logs in with the right password: new session id, HttpOnly SameSite=Lax cookie, audited', async () => {
    const { email, password } = await app.createUser('admin');
    const s = app.anonymousSession();
    await s.get('/login');
    // The form is protected without a stored session: no session id exists before the login.
    expect(s.cookies.has(COOKIE)).toBe(false);
    const res = await s.fetch('/login', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: s.csrf!, email: email.toUpperCase(), password, next: '/admin/audit' }),
    });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/admin/audit');
    const setCookie = res.headers.getSetCookie().find((c) => c.startsWith(`${COOKIE}=`))!;
    expect(setCookie).toMatch(/HttpOnly/i);
    expect(setCookie).toMatch(/SameSite=Lax/i);
    expect(setCookie).not.toMatch(/Secure/i);
    expect(s.cookies.get(COOKIE)).toBeTruthy();
    const page = await s.get('/admin/audit');
    expect(page.res.status).toBe(200);
    expect(page.text).toContain(email);
    const entries = await allAudit(app);
    expect(
      entries.some(
        (e) =>
          e.action === 'auth.login' && e.outcome === 'success' && e.target === `user:${email}` && e.ip === '127.0.0.1',
      ),
    ).toBe(true);
  });

  it('refuses a wrong password and an unknown email with the same message, audited as failures', async () => {
    const { email } = await app.createUser('admin');
    const s = app.anonymousSession();
    await s.get('/login');
    const wrong = await s.postForm('/login', { email, password: 'not-the-password-1' });
    expect(wrong.res.status).toBe(401);
    expect(wrong.text).toContain('Wrong email or password.');
    const unknown = await s.postForm('/login', { email: 'nobody@example.test', password: 'not-the-password-1' });
    expect(unknown.res.status).toBe(401);
    expect(unknown.text).toContain('Wrong email or password.');
    expect((await s.fetch('/admin/audit')).status).toBe(303);
    const failures = (await allAudit(app)).filter((e) => e.action === 'auth.login' && e.outcome === 'failure');
    expect(failures.map((e) => e.target)).toEqual(
      expect.arrayContaining([`user:${email}`, 'user:nobody@example.test']),
    );
  });

  it('logout destroys the session on the server, not just the cookie', async () => {
    const s = await app.browserSession('admin');
    const cookie = s.cookies.get(COOKIE)!;
    const out = await s.postForm('/logout');
    expect(out.res.status).toBe(303);
    expect(out.res.headers.get('location')).toBe('/login');
    const replay = new HttpSession(app.url);
    replay.cookies.set(COOKIE, cookie);
    expect((await replay.fetch('/admin/audit')).status).toBe(303);
    expect((await allAudit(app)).some((e) => e.action === 'auth.logout')).toBe(true);
  });

  it('ends a session idle for 30 minutes', async () => {
    const s = await app.browserSession('admin');
    now += 29 * 60_000;
    expect((await s.fetch('/admin/audit')).status).toBe(200);
    now += 29 * 60_000;
    expect((await s.fetch('/admin/audit')).status).toBe(200);
    now += 30 * 60_000 + 1000;
    const res = await s.fetch('/admin/audit');
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toMatch(/^\/login/);
    // The login page it redirects to says why, once.
    expect((await s.get(res.headers.get('location')!)).text).toContain('Your session has ended');
    expect((await s.get('/login')).text).not.toContain('Your session has ended');
  });

  it('ends an active session 12 hours after login', async () => {
    const s = await app.browserSession('admin');
    let elapsed = 0;
    while (elapsed + 25 * 60_000 < 12 * 3600_000) {
      now += 25 * 60_000;
      elapsed += 25 * 60_000;
      expect((await s.fetch('/admin/audit')).status).toBe(200);
    }
    now += 25 * 60_000;
    expect((await s.fetch('/admin/audit')).status).toBe(303);
  });

  it('"Log out every session" ends every session, and is only for sysadmins', async () => {
    const admin = await app.browserSession('admin');
    const other = await app.browserSession('sysadmin');
    const sys = await app.browserSession('sysadmin');
    const refused = await admin.postForm('/admin/sessions/revoke-all');
    expect(refused.res.status).toBe(403);
    expect((await other.fetch('/admin/audit')).status).toBe(200);
    const done = await sys.postForm('/admin/sessions/revoke-all');
    expect(done.res.status).toBe(303);
    for (const s of [admin, other, sys]) expect((await s.fetch('/admin/audit')).status).toBe(303);
    expect((await allAudit(app)).some((e) => e.action === 'sessions.revoke_all' && e.outcome === 'success')).toBe(true);
    // A fresh login works again.
    await app.browserSession('admin');
  });
});

describe('CSRF (file store)', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp();
  });
  afterAll(async () => {
    await app?.close();
  });

  it("a form post without a token, with a forged one, or with another session's token gets 403 csrf_failed and changes nothing", async () => {
    const s = await app.browserSession('sysadmin');
    const other = await app.browserSession('sysadmin');
    const otherToken = await other.refreshCsrf();
    const mine = await s.refreshCsrf();
    for (const csrf of [
      false,
      'forged-token',
      otherToken,
      mine.slice(0, -1) + (mine.endsWith('a') ? 'b' : 'a'),
    ] as const) {
      const res = await s.postForm('/admin/api-keys', { name: 'sneaky', scopes: ['admin'] }, { csrf });
      expect(res.res.status).toBe(403);
      expect(res.text).toContain('The form has expired or did not come from mailgate');
    }
    const json = await s.fetch('/admin/api-keys', {
      method: 'POST',
      headers: { accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' },
      body: 'name=x&scopes=send',
    });
    expect(json.status).toBe(403);
    expect(((await json.json()) as { error: { code: string } }).error.code).toBe('csrf_failed');
    expect(await app.services.apiKeys.list()).toEqual([]);
    // Logging out needs the token too, so a cross-site page cannot log an admin out.
    expect((await s.postForm('/logout', {}, { csrf: false })).res.status).toBe(403);
    expect((await s.fetch('/admin/audit')).status).toBe(200);
    // With the right token it works.
    expect((await s.postForm('/admin/api-keys', { name: 'fine', scopes: ['send'] })).res.status).toBe(303);
  });

  it('the login form needs a token as well', async () => {
    const { email, password } = await app.createUser('admin');
    const s = app.anonymousSession();
    await s.get('/login');
    const res = await s.postForm('/login', { email, password }, { csrf: false });
    expect(res.res.status).toBe(403);
    expect((await s.fetch('/admin/audit')).status).toBe(303);
  });
});

describe('API keys and the JSON API (file store)', () => {
  let app: TestApp;
  // Grace periods and expiry are read from this clock: the tests move it instead of waiting.
  let now = Date.now();
  beforeAll(async () => {
    app = await startTestApp({ clock: () => now });
  });
  afterAll(async () => {
    await app?.close();
  });

  const api = (key: string | null, pathname: string, init: RequestInit = {}) =>
    fetch(`${app.url}${pathname}`, {
      ...init,
      headers: {
        ...(key ? { authorization: `Bearer ${key}` } : {}),
        ...(init.body ? { 'content-type': 'application/json' } : {}),
        ...(init.headers as Record<string, string> | undefined),
      },
    });

  it('401 without a key or with a wrong one; 403 without the scope', async () => {
    const missing = await api(null, '/api/v1/api-keys');
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('invalid_api_key');
    const unknownKey = `mgk_${'A'.repeat(43)}`;
    expect((await api(unknownKey, '/api/v1/api-keys')).status).toBe(401);
    expect((await api('mgk_short', '/api/v1/api-keys')).status).toBe(401);
    expect((await api(null, '/api/v1/api-keys', { headers: { authorization: 'Basic abc' } })).status).toBe(401);
    const sendOnly = await app.apiKey(['send']);
    const refused = await api(sendOnly, '/api/v1/api-keys');
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('insufficient_scope');
    expect((await api(sendOnly, '/api/v1/audit')).status).toBe(403);
  });

  it('creates a key (shown once), lists it without the key, uses it, revokes it: then 401', async () => {
    const admin = await app.apiKey(['admin']);
    const res = await api(admin, '/api/v1/api-keys', {
      method: 'POST',
      body: JSON.stringify({ name: 'deploy bot', scopes: ['admin', 'send'] }),
    });
    expect(res.status).toBe(201);
    const created = (await res.json()) as { id: string; name: string; scopes: string[]; key: string; prefix: string };
    expect(created).toMatchObject({ name: 'deploy bot', scopes: ['admin', 'send'] });
    expect(created.key).toMatch(/^mgk_[A-Za-z0-9_-]{43}$/);
    expect(created.key.startsWith(created.prefix)).toBe(true);
    const listed = await api(created.key, '/api/v1/api-keys');
    expect(listed.status).toBe(200);
    const text = await listed.text();
    expect(text).toContain(created.id);
    expect(text).not.toContain(created.key);
    expect(text).not.toContain('"hash"');
    const one = (await (await api(admin, `/api/v1/api-keys/${created.id}`)).json()) as { lastUsedAt: string | null };
    expect(one.lastUsedAt).not.toBeNull();
    const del = await api(admin, `/api/v1/api-keys/${created.id}`, { method: 'DELETE' });
    expect(del.status).toBe(200);
    expect(((await del.json()) as { status: string }).status).toBe('revoked');
    expect((await api(created.key, '/api/v1/api-keys')).status).toBe(401);
    expect((await api(admin, '/api/v1/api-keys/key_nope', { method: 'DELETE' })).status).toBe(404);
  });

  it('rotation: the successor works at once, the old key works during the grace period, then stops', async () => {
    const admin = await app.apiKey(['admin']);
    const old = await app.apiKey(['admin'], 'rotating');
    const id = (await app.services.apiKeys.list()).find((k) => k.name === 'rotating')!.id;
    const res = await api(admin, `/api/v1/api-keys/${id}/rotate`, {
      method: 'POST',
      body: JSON.stringify({ graceSeconds: 2 }),
    });
    expect(res.status).toBe(201);
    const rotated = (await res.json()) as {
      key: string;
      predecessorId: string;
      previous: { status: string; successorId: string };
    };
    expect(rotated.predecessorId).toBe(id);
    expect(rotated.previous.status).toBe('expiring');
    expect((await api(rotated.key, '/api/v1/api-keys')).status).toBe(200);
    expect((await api(old, '/api/v1/api-keys')).status).toBe(200);
    now += 1999;
    expect((await api(old, '/api/v1/api-keys')).status).toBe(200);
    now += 1;
    expect((await api(old, '/api/v1/api-keys')).status).toBe(401);
    expect((await api(rotated.key, '/api/v1/api-keys')).status).toBe(200);
    const entries = (await app.store.readLog<AuditEntry>(AUDIT_LOG, { limit: 100 })).map((r) => r.entry);
    expect(entries.some((e) => e.action === 'api_key.rotate' && e.target === `api_key:${id}`)).toBe(true);
  });

  it('unknown JSON fields and bad values get 400 naming the field, and nothing is created', async () => {
    const admin = await app.apiKey(['admin']);
    const before = (await app.services.apiKeys.list()).length;
    const res = await api(admin, '/api/v1/api-keys', {
      method: 'POST',
      body: JSON.stringify({ name: 'x', scopes: ['send'], expiresInDays: 3 }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; details: { field: string; message: string }[] } };
    expect(body.error.code).toBe('validation_failed');
    expect(JSON.stringify(body.error.details)).toContain('expiresInDays');
    const bad = await api(admin, '/api/v1/api-keys', {
      method: 'POST',
      body: JSON.stringify({ name: '', scopes: ['root'] }),
    });
    expect(bad.status).toBe(400);
    const fields = ((await bad.json()) as { error: { details: { field: string }[] } }).error.details.map(
      (d) => d.field,
    );
    expect(fields).toEqual(expect.arrayContaining(['name', 'scopes[0]']));
    expect((await app.services.apiKeys.list()).length).toBe(before);
  });

  it('a handler that throws a plain Error answers the generic message, no stack trace', async () => {
    const admin = await app.apiKey(['admin']);
    // A damaged record makes the list handler throw a TypeError deep inside.
    await app.store.put('api_keys', 'key_damaged', null);
    try {
      const res = await api(admin, '/api/v1/api-keys');
      expect(res.status).toBe(500);
      const text = await res.text();
      expect(JSON.parse(text)).toEqual({
        error: { code: 'internal', message: 'Something went wrong on our side.', details: [] },
      });
      expect(text).not.toMatch(/TypeError|at .*\.(ts|js)|node_modules/);
      const s = await app.browserSession('sysadmin');
      const page = await s.get('/admin/api-keys');
      expect(page.res.status).toBe(500);
      expect(page.text).toContain('Something went wrong on our side.');
      expect(page.text).not.toMatch(/TypeError|at .*\.(ts|js)|node_modules/);
    } finally {
      await app.store.delete('api_keys', 'key_damaged');
    }
  });

  it('the page creates a key shown once, then lists only its prefix; revoke from the page', async () => {
    const s = await app.browserSession('sysadmin');
    const posted = await s.postForm('/admin/api-keys', { name: 'page key', scopes: ['send', 'admin'] });
    expect(posted.res.status).toBe(303);
    const created = await s.get('/admin/api-keys');
    expect(created.res.headers.get('cache-control')).toBe('no-store');
    const key = /id="new-api-key"[^>]*value="(mgk_[^"]+)"/.exec(created.text)?.[1];
    expect(key).toBeDefined();
    expect(created.text).toContain('shown only once');
    expect((await api(key!, '/api/v1/audit')).status).toBe(200);
    const again = await s.get('/admin/api-keys');
    expect(again.text).not.toContain(key!);
    expect(again.text).toContain(key!.slice(0, 10));
    const noScope = await s.postForm('/admin/api-keys', { name: 'none' });
    expect(noScope.res.status).toBe(400);
    expect(noScope.text).toContain('Tick at least one scope.');
    const id = (await app.services.apiKeys.list()).find((k) => k.name === 'page key')!.id;
    const revoked = await s.postForm(`/admin/api-keys/${id}/revoke`, { confirmed: 'yes' });
    expect(revoked.res.status).toBe(303);
    const list = await s.get('/admin/api-keys');
    expect(list.text).toContain('is revoked');
    expect((await api(key!, '/api/v1/audit')).status).toBe(401);
  });

  it('an admin (not sysadmin) cannot manage API keys but can read the audit log', async () => {
    const s = await app.browserSession('admin');
    expect((await s.fetch('/admin/api-keys')).status).toBe(403);
    expect((await s.postForm('/admin/api-keys', { name: 'x', scopes: ['send'] })).res.status).toBe(403);
    expect((await s.fetch('/admin/audit')).status).toBe(200);
  });

  it('the audit API pages backwards with before/limit', async () => {
    const admin = await app.apiKey(['admin']);
    for (let i = 0; i < 5; i++)
      await app.services.audit.record({
        actor: { type: 'system', id: 'test' },
        action: `test.page${i}`,
        outcome: 'success',
      });
    const first = (await (await api(admin, '/api/v1/audit?limit=2')).json()) as {
      items: { id: string; action: string }[];
      nextBefore: string;
    };
    expect(first.items.map((e) => e.action)).toEqual(['test.page4', 'test.page3']);
    const second = (await (await api(admin, `/api/v1/audit?limit=2&before=${first.nextBefore}`)).json()) as {
      items: { action: string }[];
    };
    expect(second.items.map((e) => e.action)).toEqual(['test.page2', 'test.page1']);
    expect((await api(admin, '/api/v1/audit?limit=5000')).status).toBe(400);
  });

  it('the audit page shows 50 entries a page with a link to older ones', async () => {
    for (let i = 0; i < 60; i++)
      await app.services.audit.record({
        actor: { type: 'system', id: 'test' },
        action: `test.html${i}`,
        outcome: 'success',
      });
    const s = await app.browserSession('admin');
    const first = await s.get('/admin/audit');
    expect(first.res.status).toBe(200);
    expect(first.text.match(/<tr data-entry-id=/g)?.length).toBe(50);
    // The newest entries are this test's login and its last records.
    expect(first.text).toContain('test.html59');
    const older = /href="\/admin\/audit\?cursor=([^"]+)"/.exec(first.text)?.[1];
    expect(older).toBeDefined();
    const second = await s.get(`/admin/audit?cursor=${older}`);
    expect(second.res.status).toBe(200);
    expect(second.text).toContain('test.html0');
    expect(second.text).not.toContain('test.html59');
    expect((await s.fetch('/admin/audit?before=nonsense')).status).toBe(400);
  });
});

describe('no secret reaches the audit log or the data folder (file store)', () => {
  it('passwords and API keys are absent from audit entries and from every file', async () => {
    const app = await startTestApp();
    try {
      const canaryPassword = 'canary-Passw0rd-7f3a9c';
      const { email } = await app.createUser('sysadmin');
      const owner = { email: `owner-${Date.now()}@example.test`, password: 'canary-0wner-Secret-91b2' };
      await app.services.users.create({ ...owner, role: 'sysadmin' });
      const s = app.anonymousSession();
      await s.get('/login');
      await s.postForm('/login', { email, password: canaryPassword });
      await s.login(owner.email, owner.password);
      await s.postForm('/admin/api-keys', { name: 'canary', scopes: ['send'] });
      const created = await s.get('/admin/api-keys');
      const key = /id="new-api-key"[^>]*value="(mgk_[^"]+)"/.exec(created.text)![1]!;
      const id = (await app.services.apiKeys.list())[0]!.id;
      await s.postForm(`/admin/api-keys/${id}/revoke`, { confirmed: 'yes' });
      const entries = await allAudit(app);
      const actions = entries.map((e) => `${e.action}:${e.outcome}`);
      expect(actions).toEqual(
        expect.arrayContaining([
          'auth.login:failure',
          'auth.login:success',
          'api_key.create:success',
          'api_key.revoke:success',
        ]),
      );
      const auditText = JSON.stringify(entries);
      for (const secret of [canaryPassword, owner.password, key, key.slice(4)]) expect(auditText).not.toContain(secret);
      for (const file of await filesUnder(app.config.MAILGATE_DATA_DIR)) {
        const content = await readFile(file, 'utf8');
        for (const secret of [canaryPassword, owner.password, key, key.slice(4)])
          expect(content, file).not.toContain(secret);
      }
    } finally {
      await app.close();
    }
  });
});

describe('first sysadmin from the environment and last-used times (file store)', () => {
  it('creates the first sysadmin once, audited; a later start with other values changes nothing', async () => {
    const password = 'first-admin-password-1';
    const app = await startTestApp({
      env: { MAILGATE_ADMIN_EMAIL: 'First@Example.test', MAILGATE_ADMIN_PASSWORD: password },
    });
    try {
      expect((await app.services.users.list()).map((u) => [u.email, u.role])).toEqual([
        ['first@example.test', 'sysadmin'],
      ]);
      const s = app.anonymousSession();
      await s.login('first@example.test', password);
      expect((await s.fetch('/admin/api-keys')).status).toBe(200);
      const entries = await allAudit(app);
      expect(entries.some((e) => e.action === 'user.create' && e.target === 'user:first@example.test')).toBe(true);
      expect(JSON.stringify(entries)).not.toContain(password);
      // Another admin exists now; starting again with different variables creates nobody.
      expect(await app.services.users.ensureFirstAdmin('second@example.test', 'second-admin-password')).toBeNull();
      expect((await app.services.users.list()).length).toBe(1);
    } finally {
      await app.close();
    }
  });

  it('writes the last-used time of a key at most once a minute', async () => {
    let now = Date.parse('2026-03-01T10:00:00Z');
    const app = await startTestApp({ clock: () => now });
    try {
      const key = await app.apiKey(['admin'], 'busy');
      const call = () => fetch(`${app.url}/api/v1/audit?limit=1`, { headers: { authorization: `Bearer ${key}` } });
      const doc = async () =>
        (await app.store.list<{ name: string; lastUsedAt: string | null }>('api_keys')).find(
          (d) => d.value.name === 'busy',
        )!;
      expect((await call()).status).toBe(200);
      const first = await doc();
      expect(first.value.lastUsedAt).toBe('2026-03-01T10:00:00.000Z');
      now += 30_000;
      for (let i = 0; i < 5; i++) expect((await call()).status).toBe(200);
      expect((await doc()).version).toBe(first.version);
      now += 31_000;
      expect((await call()).status).toBe(200);
      const later = await doc();
      expect(later.version).toBe(first.version + 1);
      expect(later.value.lastUsedAt).toBe('2026-03-01T10:01:01.000Z');
    } finally {
      await app.close();
    }
  });
});
