import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
      const other = await (await app.browserSession('sysadmin')).fetch('/admin/api-keys', { method: 'POST', headers: { 'x-csrf-token': 'x' } });
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
      const withPassword = await api(app, 'PATCH', `/api/v1/smtp-servers/${id}`, adminKey, { host: 'smtp2.example.com', changePassword: true, password: 'a new password' });
      expect(withPassword.status, withPassword.text).toBe(200);
      expect(withPassword.body.host).toBe('smtp2.example.com');

      // The same on the HTML form of a sysadmin.
      const s = await app.browserSession('sysadmin');
      const page = await s.postForm(`/admin/smtp-servers/${id}`, { name: 'Relay', fromAddress: 'notify@example.com', host: 'evil.example', port: '2525', tls: 'on', authMethod: 'basic', username: 'relay' });
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
