import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUDIT_LOG, type AuditEntry } from '../../src/admin/audit.js';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { redisUrlForTests } from '../fakes/redis.js';

/**
 * Login limits: counted before the password check (parallel attempts cannot pass them), growing waits per
 * account instead of a lockout an attacker controls, a cap per client address, bounded password hashing.
 */

async function checkedPasswords(app: TestApp, email: string): Promise<number> {
  const rows = await app.store.readLog<AuditEntry>(AUDIT_LOG, { limit: 1000 });
  return rows.filter(
    (r) =>
      r.entry.action === 'auth.login' &&
      r.entry.target === `user:${email}` &&
      r.entry.detail?.reason === 'invalid_credentials',
  ).length;
}

for (const kind of ['file', 'redis'] as const) {
  describe.skipIf(kind === 'redis' && !redisUrlForTests())(`login limits (${kind} store)`, () => {
    let app: TestApp;
    let token: { csrf: string; cookie: string };
    beforeAll(async () => {
      app = await startTestApp({ store: kind, env: { MAILGATE_TRUST_PROXY: '1' } });
      const s = app.anonymousSession();
      await s.get('/login');
      token = { csrf: s.csrf!, cookie: s.cookieHeader() };
    });
    afterAll(async () => {
      await app?.close();
    });

    const address = () => `10.${randomBytes(1)[0]}.${randomBytes(1)[0]}.${randomBytes(1)[0]}`;

    /** One login post from `ip`, with a valid form token (the token is not what is tested here). */
    function login(email: string, password: string, ip: string): Promise<Response> {
      return fetch(`${app.url}/login`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': ip, cookie: token.cookie },
        body: new URLSearchParams({ _csrf: token.csrf, email, password }),
      });
    }

    it('20 parallel wrong passwords from one address: only 5 free failures and one spaced attempt are checked', async () => {
      const { email } = await app.createUser('admin');
      const ip = address();
      const statuses = await Promise.all(
        Array.from({ length: 20 }, (_, i) => login(email, `wrong-password-${i}`, ip).then((r) => r.status)),
      );
      expect(statuses.filter((s) => s === 401)).toHaveLength(6);
      expect(statuses.filter((s) => s === 429)).toHaveLength(14);
      expect(await checkedPasswords(app, email)).toBe(6);
    }, 60_000);

    it('after 5 failures an address waits 2 s, then 4 s between attempts, even with the right password; the account stays open to others', async () => {
      const { email, password } = await app.createUser('admin');
      const attacker = address();
      for (let i = 0; i < 6; i++) expect((await login(email, `wrong-password-${i}`, attacker)).status).toBe(401);
      // The 6th attempt took a 2 s turn when it started; the password check took part of it.
      const first = await login(email, password, attacker);
      expect(first.status).toBe(429);
      const firstWait = Number(first.headers.get('retry-after'));
      expect(firstWait).toBeGreaterThanOrEqual(1);
      expect(firstWait).toBeLessThanOrEqual(2);
      expect(await first.text()).toContain(`Too many attempts; wait ${firstWait} second(s)`);
      // The wait lives in the limiter's store (Redis TTLs on Redis), which no injected clock moves.
      await sleep(firstWait * 1000 + 100);
      const started = Date.now();
      expect((await login(email, 'wrong-password-7', attacker)).status).toBe(401);
      const second = await login(email, password, attacker);
      expect(second.status).toBe(429);
      // A 4 s turn, minus the time the 7th check took.
      expect(Number(second.headers.get('retry-after'))).toBeGreaterThanOrEqual(
        4 - Math.floor((Date.now() - started) / 1000),
      );
      expect(Number(second.headers.get('retry-after'))).toBeLessThanOrEqual(4);
      // The owner, from another address, is not locked out by that attacker.
      expect((await login(email, password, address())).status).toBe(303);
    }, 60_000);

    it('one address gets 20 checked attempts across accounts, even in parallel; other addresses are unaffected', async () => {
      const { email, password } = await app.createUser('admin');
      const ip = address();
      const statuses = await Promise.all(
        Array.from({ length: 25 }, (_, i) =>
          login(`nobody-${i}-${randomBytes(3).toString('hex')}@example.test`, 'wrong-password-x', ip).then(
            (r) => r.status,
          ),
        ),
      );
      expect(statuses.filter((s) => s === 401)).toHaveLength(20);
      expect(statuses.filter((s) => s === 429)).toHaveLength(5);
      expect((await login(email, password, ip)).status).toBe(429);
      expect((await login(email, password, address())).status).toBe(303);
    }, 120_000);

    it('guessing one account from many addresses: 20 free failures, then the attempts are spaced for everyone', async () => {
      const { email, password } = await app.createUser('admin');
      for (let i = 0; i < 21; i++) expect((await login(email, `wrong-password-${i}`, address())).status).toBe(401);
      const waiting = await login(email, password, address());
      expect(waiting.status).toBe(429);
      expect(Number(waiting.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(Number(waiting.headers.get('retry-after'))).toBeLessThanOrEqual(2);
      expect(await checkedPasswords(app, email)).toBe(21);
    }, 120_000);
  });
}

describe('password hashing under a burst of logins (file store)', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ env: { MAILGATE_TRUST_PROXY: '1' } });
  });
  afterAll(async () => {
    await app?.close();
  });

  it('an unrelated API request is not held up by 24 parallel password checks', async () => {
    const s = app.anonymousSession();
    await s.get('/login');
    const adminKey = await app.apiKey(['admin']);
    const started = performance.now();
    const burst = Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        fetch(`${app.url}/login`, {
          method: 'POST',
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            'x-forwarded-for': `10.77.0.${i + 1}`,
            cookie: s.cookieHeader(),
          },
          body: new URLSearchParams({
            _csrf: s.csrf!,
            email: `nobody-${i}@example.test`,
            password: 'wrong-password-x',
          }),
        }).then((r) => r.status),
      ),
    );
    // Wait until the checks are under way, then time a request that writes to the store.
    await expect
      .poll(() => app.services.users.hashingLoad.running, { interval: 5, timeout: 10_000 })
      .toBeGreaterThan(0);
    expect(app.services.users.hashingLoad.running).toBeLessThanOrEqual(2);
    const apiStart = performance.now();
    const res = await fetch(`${app.url}/api/v1/api-keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'during a burst', scopes: ['send'] }),
    });
    const apiMs = performance.now() - apiStart;
    expect(res.status).toBe(201);
    const statuses = await burst;
    const burstMs = performance.now() - started;
    expect(statuses.every((st) => st === 401)).toBe(true);
    // Without a bound the request waits behind nearly the whole burst (the checks hold every thread-pool thread).
    expect(apiMs).toBeLessThan(burstMs / 4);
  }, 180_000);
});
