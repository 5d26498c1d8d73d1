import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { redisUrlForTests } from '../fakes/redis.js';

/** The login and setup forms are protected without storing a session for every anonymous visitor. */

const SESSION_COOKIE = 'mailgate.sid';
const CSRF_COOKIE = 'mailgate.csrf';

async function sessionKeys(app: TestApp): Promise<number> {
  const redis = new Redis(app.config.REDIS_URL!, { maxRetriesPerRequest: 1 });
  try {
    let cursor = '0';
    let count = 0;
    do {
      const [next, batch] = await redis.scan(
        cursor,
        'MATCH',
        `${app.config.MAILGATE_REDIS_PREFIX}sess:*`,
        'COUNT',
        1000,
      );
      cursor = next;
      count += batch.length;
    } while (cursor !== '0');
    return count;
  } finally {
    redis.disconnect();
  }
}

for (const kind of ['file', 'redis'] as const) {
  describe.skipIf(kind === 'redis' && !redisUrlForTests())(
    `anonymous forms and the session store (${kind} store)`,
    () => {
      let app: TestApp;
      beforeAll(async () => {
        app = await startTestApp({ store: kind });
      });
      afterAll(async () => {
        await app?.close();
      });

      it('100 anonymous views of /login (and /setup) store no session and set no session cookie', async () => {
        const before = kind === 'redis' ? await sessionKeys(app) : 0;
        const pages = kind === 'file' ? ['/login', '/setup'] : ['/login'];
        for (let i = 0; i < 100; i++) {
          for (const page of pages) {
            const res = await fetch(`${app.url}${page}`);
            expect(res.status).toBe(200);
            expect(await res.text()).toMatch(/name="_csrf" value="[A-Za-z0-9_-]{43}"/);
            const cookies = res.headers.getSetCookie();
            expect(cookies.some((c) => c.startsWith(`${SESSION_COOKIE}=`))).toBe(false);
            expect(
              cookies.some((c) => c.startsWith(`${CSRF_COOKIE}=`) && /HttpOnly/i.test(c) && /SameSite=Lax/i.test(c)),
            ).toBe(true);
          }
        }
        if (kind === 'redis') expect(await sessionKeys(app)).toBe(before);
      });

      it('the login form refuses a missing, forged or foreign token with 403 csrf_failed and works with its own', async () => {
        const { email, password } = await app.createUser('admin');
        const visitor = app.anonymousSession();
        const own = (await visitor.get('/login'), visitor.csrf!);
        const stranger = app.anonymousSession();
        await stranger.get('/login');
        const foreign = stranger.csrf!;
        expect(foreign).not.toBe(own);
        const forged = own.slice(0, -2) + (own.endsWith('AA') ? 'BB' : 'AA');
        for (const csrf of [false, forged, foreign, `${own}x`, ''] as const) {
          const res = await visitor.fetch('/login', {
            method: 'POST',
            headers: { accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams({ ...(csrf === false ? {} : { _csrf: csrf }), email, password }),
          });
          expect(res.status).toBe(403);
          expect(((await res.json()) as { error: { code: string } }).error.code).toBe('csrf_failed');
        }
        // The right token without the cookie it was made for is refused too.
        const cookieless = await fetch(`${app.url}/login`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ _csrf: own, email, password }),
        });
        expect(cookieless.status).toBe(403);
        expect(visitor.cookies.has(SESSION_COOKIE)).toBe(false);
        const ok = await visitor.postForm('/login', { email, password }, { csrf: own });
        expect(ok.res.status).toBe(303);
        expect(visitor.cookies.has(SESSION_COOKIE)).toBe(true);
        expect((await visitor.fetch('/admin/audit')).status).toBe(200);
      });
    },
  );
}
