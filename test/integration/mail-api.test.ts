import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MESSAGES, type MessageDoc } from '../../src/mail/queue.js';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { redisUrlForTests } from '../fakes/redis.js';
import { startTestSmtp, type TestSmtp } from '../fakes/smtp-server.js';

// The HTTP surface of outgoing mail on a real mailgate (file store and Redis, workers on) and a real smtp-server on
// loopback (plaintext AUTH is allowed only there, which keeps these tests free of certificates).

const PASSWORD = 'relay password 123';
let app: TestApp;
let smtp: TestSmtp;
let sendKey: string;
let adminKey: string;

async function api(method: string, path: string, key: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${app.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${key}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...headers,
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return {
    status: res.status,
    body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
    text,
    headers: res.headers,
  };
}

async function waitForStatus(id: string, status: string, timeoutMs = 10_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await api('GET', `/api/v1/messages/${id}`, sendKey);
    if (r.body.status === status) return r.body;
    if (Date.now() > deadline)
      throw new Error(`message ${id} is ${String(r.body.status)}, expected ${status}: ${r.text}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

for (const kind of ['file', 'redis'] as const) {
  describe.skipIf(kind === 'redis' && !redisUrlForTests())(`outgoing mail over HTTP on the ${kind} store`, () => {
    beforeAll(async () => {
      smtp = await startTestSmtp({
        starttls: false,
        allowInsecureAuth: true,
        auth: { user: 'relay', pass: PASSWORD },
        onRcptTo: (address) =>
          address === 'gone@example.net' ? { code: 550, message: '5.1.1 <gone@example.net>: no such user' } : undefined,
      });
      app = await startTestApp({ store: kind, workers: true, env: { MAILGATE_QUEUE_RETRY_BASE_MS: '50' } });
      sendKey = await app.apiKey(['send']);
      adminKey = await app.apiKey(['admin']);
    });

    afterAll(async () => {
      await app?.close();
      await smtp?.close();
    });

    describe('SMTP servers API and send API', () => {
      let serverId: string;

      it('creates a server (201, no password in the answer) and tests the connection', async () => {
        const created = await api('POST', '/api/v1/smtp-servers', adminKey, {
          name: 'Loopback relay',
          fromAddress: 'notify@example.com',
          emailPrefix: '[mailgate]',
          host: '127.0.0.1',
          port: smtp.port,
          authMethod: 'basic',
          username: 'relay',
          password: PASSWORD,
          isDefault: true,
        });
        expect(created.status, created.text).toBe(201);
        expect(created.text).not.toContain(PASSWORD);
        expect(created.body).toMatchObject({
          name: 'Loopback relay',
          hasPassword: true,
          isDefault: true,
          port: smtp.port,
          timeoutMs: null,
          effective: { timeoutMs: 10000 },
        });
        serverId = created.body.id as string;
        const stored = await app.store.get<{ password: string }>('smtp_servers', serverId);
        expect(stored?.value.password).toMatch(/^mg1\./);
        expect(JSON.stringify(stored)).not.toContain(PASSWORD);

        const test = await api('POST', `/api/v1/smtp-servers/${serverId}/test`, adminKey);
        expect(test.status).toBe(200);
        expect(test.body.ok, test.text).toBe(true);
        expect((test.body.transcript as string[]).some((l) => l.startsWith('C: AUTH'))).toBe(true);
        expect(test.text).not.toContain(PASSWORD);
        expect(test.text).not.toContain(Buffer.from(PASSWORD).toString('base64'));
      });

      it('changes the password only with changePassword; a version mismatch is a conflict', async () => {
        const bare = await api('PATCH', `/api/v1/smtp-servers/${serverId}`, adminKey, { password: 'new one' });
        expect(bare.status).toBe(400);
        expect(bare.body.error).toMatchObject({ details: [{ field: 'password' }] });
        const before = await api('GET', `/api/v1/smtp-servers/${serverId}`, adminKey);
        const renamed = await api('PATCH', `/api/v1/smtp-servers/${serverId}`, adminKey, {
          description: 'loopback sink',
          version: before.body.version,
        });
        expect(renamed.status, renamed.text).toBe(200);
        expect(renamed.body).toMatchObject({
          description: 'loopback sink',
          passwordVersion: before.body.passwordVersion,
          hasPassword: true,
        });
        const stale = await api('PATCH', `/api/v1/smtp-servers/${serverId}`, adminKey, {
          description: 'stale',
          version: before.body.version,
        });
        expect(stale.status).toBe(409);
        expect((await api('POST', `/api/v1/smtp-servers/${serverId}/test`, adminKey)).body.ok).toBe(true);
      });

      it('refuses basic auth without TLS to a non-loopback host, with the field named', async () => {
        const r = await api('POST', '/api/v1/smtp-servers', adminKey, {
          name: 'x',
          fromAddress: 'a@example.com',
          host: 'smtp.example.com',
          authMethod: 'basic',
          username: 'u',
          password: 'p',
        });
        expect(r.status).toBe(400);
        expect(r.body.error).toMatchObject({ code: 'validation_failed', details: [{ field: 'tls' }] });
      });

      it('applies provider presets on create', async () => {
        const r = await api('POST', '/api/v1/smtp-servers', adminKey, {
          name: 'M365',
          fromAddress: 'a@example.com',
          serviceProvider: 'microsoft',
          host: 'ignored.example.com',
        });
        expect(r.status, r.text).toBe(201);
        expect(r.body).toMatchObject({ host: 'smtp.office365.com', port: 587, protocol: 'smtp', tls: true });
        const g = await api('POST', '/api/v1/smtp-servers', adminKey, {
          name: 'Gmail',
          fromAddress: 'a@example.com',
          serviceProvider: 'gmail',
        });
        expect(g.body).toMatchObject({ host: 'smtp.gmail.com', port: 465, protocol: 'smtps' });
        const patch = await api('PATCH', `/api/v1/smtp-servers/${g.body.id as string}`, adminKey, {
          serviceProvider: 'yahoo',
        });
        expect(patch.status).toBe(400);
        await api('DELETE', `/api/v1/smtp-servers/${g.body.id as string}`, adminKey);
        await api('DELETE', `/api/v1/smtp-servers/${r.body.id as string}`, adminKey);
      });

      it('a send key cannot manage servers', async () => {
        const r = await api('GET', '/api/v1/smtp-servers', sendKey);
        expect(r.status).toBe(403);
      });

      it('queues a message (202) and delivers it: From, prefix, multipart, envelope', async () => {
        const r = await api('POST', '/api/v1/messages', sendKey, {
          fromName: 'Joe Bloggs',
          to: ['a@example.net'],
          cc: 'c@example.net',
          bcc: 'b@example.net',
          subject: 'Hello',
          html: '<p>Hi there</p>',
        });
        expect(r.status, r.text).toBe(202);
        expect(r.body).toMatchObject({ status: 'queued' });
        const done = await waitForStatus(r.body.id as string, 'sent');
        expect(done).toMatchObject({ attempts: 1, lastError: null });
        expect(done.recipients).toEqual([
          { address: 'a@example.net', kind: 'to', status: 'accepted' },
          { address: 'c@example.net', kind: 'cc', status: 'accepted' },
          { address: 'b@example.net', kind: 'bcc', status: 'accepted' },
        ]);
        const got = smtp.messages.at(-1)!;
        expect(got.to).toEqual(['a@example.net', 'c@example.net', 'b@example.net']);
        expect(got.from).toBe('notify@example.com');
        expect(got.authUser).toBe('relay');
        expect(got.headers).toContain('From: "Joe Bloggs (mailgate)" <notify@example.com>');
        expect(got.headers).toContain('Subject: [mailgate] Hello');
        expect(got.headers.some((h) => /^Bcc:/i.test(h))).toBe(false);
        expect(got.raw).toMatch(/Content-Type: multipart\/alternative/);
        expect(got.raw).toMatch(/Content-Type: text\/plain[\s\S]*Hi there[\s\S]*Content-Type: text\/html/);
      });

      it('bad input: 400 with the field, nothing queued', async () => {
        const before = (await app.store.list(MESSAGES)).length;
        const cases: Array<[unknown, string]> = [
          [{ to: 'a@example.net', subject: 'x\r\nBcc: evil@example.org', text: 't' }, 'subject'],
          [{ to: 'a@example.net', fromName: 'Eve\nBcc: evil@example.org', subject: 's', text: 't' }, 'fromName'],
          [{ to: 'a@example.net\r\nRCPT TO:<evil@example.org>', subject: 's', text: 't' }, 'to'],
          [{ to: ['ok@example.net', 'not an address'], subject: 's', text: 't' }, 'to[1]'],
          [{ to: Array.from({ length: 101 }, (_, i) => `u${i}@example.net`), subject: 's', text: 't' }, 'to'],
          [{ to: 'a@example.net', subject: 's', text: 't', headers: { Bcc: 'evil@example.org' } }, 'headers.Bcc'],
          [{ to: 'a@example.net', subject: 's', text: 't', extra: 1 }, ''],
          [{ to: 'a@example.net', subject: 's' }, 'text'],
          [{ to: 'a@example.net', subject: 's', text: 't', serverId: 'srv_nope' }, 'serverId'],
        ];
        for (const [body, field] of cases) {
          const r = await api('POST', '/api/v1/messages', sendKey, body);
          expect(r.status, JSON.stringify(body)).toBe(400);
          const details = (r.body.error as { details: { field: string }[] }).details;
          expect(
            details.map((d) => d.field),
            r.text,
          ).toContain(field);
        }
        expect((await app.store.list(MESSAGES)).length).toBe(before);
      });

      it('Idempotency-Key: one message however often the request is repeated', async () => {
        const body = { to: 'idem@example.net', subject: 'once', text: 'only once' };
        const first = await api('POST', '/api/v1/messages', sendKey, body, { 'idempotency-key': 'order-42' });
        const second = await api('POST', '/api/v1/messages', sendKey, body, { 'idempotency-key': 'order-42' });
        expect(first.status).toBe(202);
        expect(second.status).toBe(202);
        expect(second.body.id).toBe(first.body.id);
        expect(second.headers.get('idempotent-replayed')).toBe('true');
        const different = await api(
          'POST',
          '/api/v1/messages',
          sendKey,
          { ...body, text: 'changed' },
          { 'idempotency-key': 'order-42' },
        );
        expect(different.status).toBe(409);
        await waitForStatus(first.body.id as string, 'sent');
        expect(smtp.messages.filter((m) => m.to.includes('idem@example.net'))).toHaveLength(1);
      });

      it('Idempotency-Key under concurrency: five simultaneous requests, one message', async () => {
        const body = { to: 'race@example.net', subject: 'race', text: 'once' };
        const before = (await app.store.list(MESSAGES)).length;
        const answers = await Promise.all(
          Array.from({ length: 5 }, () =>
            api('POST', '/api/v1/messages', sendKey, body, { 'idempotency-key': 'race-1' }),
          ),
        );
        expect(answers.map((a) => a.status)).toEqual([202, 202, 202, 202, 202]);
        expect(new Set(answers.map((a) => a.body.id)).size).toBe(1);
        expect((await app.store.list(MESSAGES)).length).toBe(before + 1);
      });

      it('a 550 on RCPT for one recipient keeps per-recipient results; the message is sent to the rest', async () => {
        const r = await api('POST', '/api/v1/messages', sendKey, {
          to: ['good@example.net', 'gone@example.net'],
          subject: 'partial',
          text: 't',
        });
        const done = await waitForStatus(r.body.id as string, 'sent');
        expect(done.recipients).toEqual([
          { address: 'good@example.net', kind: 'to', status: 'accepted' },
          {
            address: 'gone@example.net',
            kind: 'to',
            status: 'rejected',
            responseCode: 550,
            response: expect.stringContaining('no such user'),
          },
        ]);
        expect(smtp.messages.at(-1)!.to).toEqual(['good@example.net']);
      });

      it('the outgoing-mail switch holds messages and releases them when switched on (audited)', async () => {
        const off = await api('PUT', '/api/v1/outgoing-mail', adminKey, { enabled: false });
        expect(off.body).toMatchObject({ outgoingEnabled: false });
        const r = await api('POST', '/api/v1/messages', sendKey, {
          to: 'held@example.net',
          subject: 'held',
          text: 't',
        });
        expect(r.body.status).toBe('held');
        await new Promise((res) => setTimeout(res, 300));
        expect((await api('GET', `/api/v1/messages/${r.body.id as string}`, sendKey)).body).toMatchObject({
          status: 'held',
          heldReason: 'sending_disabled',
        });
        await api('PUT', '/api/v1/outgoing-mail', adminKey, { enabled: true });
        await waitForStatus(r.body.id as string, 'sent');
        const audit = await app.store.readLog<{ action: string }>('audit', { limit: 50 });
        expect(audit.map((e) => e.entry.action)).toEqual(
          expect.arrayContaining([
            'mail.outgoing_disable',
            'mail.outgoing_enable',
            'smtp_server.create',
            'smtp_server.test',
          ]),
        );
      });

      it('fromName with <, >, @ or " is refused: 400 naming fromName, nothing queued', async () => {
        const before = (await app.store.list(MESSAGES)).length;
        for (const fromName of ['Bank <ceo@bank.example>', 'ceo@bank.example', '"Bank" security', 'a > b']) {
          const r = await api('POST', '/api/v1/messages', sendKey, {
            to: 'a@example.net',
            fromName,
            subject: 's',
            text: 't',
          });
          expect(r.status, fromName).toBe(400);
          const details = (r.body.error as { details: { field: string; message: string }[] }).details;
          expect(details, r.text).toEqual([
            { field: 'fromName', message: expect.stringContaining('must not contain <, >, @ or "') },
          ]);
        }
        expect((await app.store.list(MESSAGES)).length).toBe(before);
      });

      it('an HTML-only message gets its text part once, when accepted: stored with it and sent as stored', async () => {
        await api('PUT', '/api/v1/outgoing-mail', adminKey, { enabled: false });
        const r = await api('POST', '/api/v1/messages', sendKey, {
          to: 'html@example.net',
          subject: 'html only',
          html: '<p>Fish &amp; chips</p><p>a < b</p>',
        });
        expect(r.status, r.text).toBe(202);
        const id = r.body.id as string;
        const stored = (await app.store.get<MessageDoc>(MESSAGES, id))!;
        expect(stored.value.input.text).toBe('Fish & chips\n\na < b');
        // Whatever is stored is what goes out: a retry or a restart does not convert the HTML again.
        await app.store.put(
          MESSAGES,
          id,
          { ...stored.value, input: { ...stored.value.input, text: 'the stored text part' } },
          { ifVersion: stored.version },
        );
        await api('PUT', '/api/v1/outgoing-mail', adminKey, { enabled: true });
        await waitForStatus(id, 'sent');
        const got = smtp.messages.find((m) => m.to.includes('html@example.net'))!;
        expect(got.raw).toMatch(/Content-Type: text\/plain[\s\S]*the stored text part[\s\S]*Content-Type: text\/html/);
      });

      it('another key cannot read a message it did not send', async () => {
        const other = await app.apiKey(['send']);
        const r = await api('POST', '/api/v1/messages', sendKey, { to: 'x@example.net', subject: 's', text: 't' });
        expect((await api('GET', `/api/v1/messages/${r.body.id as string}`, other)).status).toBe(404);
        expect((await api('GET', `/api/v1/messages/${r.body.id as string}`, adminKey)).status).toBe(403);
      });
    });

    describe('SMTP server pages', () => {
      it('an admin sees the list and may switch outgoing mail but not configure', async () => {
        const admin = await app.browserSession('admin');
        const list = await admin.get('/admin/smtp-servers');
        expect(list.res.status).toBe(200);
        expect(list.text).toContain('Loopback relay');
        expect(list.text).not.toContain(PASSWORD);
        expect((await admin.get('/admin/smtp-servers/new')).res.status).toBe(403);
        const create = await admin.postForm('/admin/smtp-servers', {
          name: 'x',
          fromAddress: 'a@example.com',
          host: '127.0.0.1',
        });
        expect(create.res.status).toBe(403);
        const off = await admin.postForm('/admin/smtp-servers/outgoing', { enabled: 'false', confirmed: 'yes' });
        expect(off.res.status).toBe(303);
        expect((await app.services.mail.servers.settings()).outgoingEnabled).toBe(false);
        await admin.postForm('/admin/smtp-servers/outgoing', { enabled: 'true' });
        expect((await app.services.mail.servers.settings()).outgoingEnabled).toBe(true);
      });

      it('a sysadmin adds a server by form, edits it without changing the password, and tests it', async () => {
        const sys = await app.browserSession('sysadmin');
        const bad = await sys.postForm('/admin/smtp-servers', {
          name: '',
          fromAddress: 'nope',
          host: '127.0.0.1',
          authMethod: 'basic',
          username: 'relay',
          password: PASSWORD,
        });
        expect(bad.res.status).toBe(400);
        expect(bad.text).toContain('fromAddress');
        expect(bad.text).not.toContain(PASSWORD);
        const added = await sys.postForm('/admin/smtp-servers', {
          name: 'Form relay',
          fromAddress: 'form@example.com',
          protocol: 'smtp',
          host: '127.0.0.1',
          port: String(smtp.port),
          timeoutMs: '',
          authMethod: 'basic',
          username: 'relay',
          password: PASSWORD,
          serviceProvider: 'custom',
        });
        expect(added.res.status, added.text).toBe(303);
        const location = added.res.headers.get('location')!;
        const page = await sys.get(location);
        expect(page.text).toContain('value="Form relay"');
        expect(page.text).toContain('>Update<');
        expect(page.text).not.toContain(PASSWORD);
        const id = location.split('/').pop()!;
        const version = /name="version" value="(\d+)"/.exec(page.text)![1]!;
        const updated = await sys.postForm(location, {
          version,
          name: 'Form relay 2',
          fromAddress: 'form@example.com',
          protocol: 'smtp',
          host: '127.0.0.1',
          port: String(smtp.port),
          timeoutMs: '5000',
          authMethod: 'basic',
          username: 'relay',
          password: '',
        });
        expect(updated.res.status, updated.text).toBe(303);
        const view = await app.services.mail.servers.get(id);
        expect(view).toMatchObject({ name: 'Form relay 2', timeoutMs: 5000, hasPassword: true, passwordVersion: 1 });
        const stale = await sys.postForm(location, {
          version,
          name: 'Stale',
          fromAddress: 'form@example.com',
          host: '127.0.0.1',
          authMethod: 'basic',
          username: 'relay',
        });
        expect(stale.res.status).toBe(409);
        // Post/redirect/get: the server page shows the result once.
        const posted = await sys.postForm(`${location}/test`, {});
        expect(posted.res.status).toBe(303);
        const tested = await sys.get(posted.res.headers.get('location')!);
        expect(tested.text).toContain('Succeeded: connected, authenticated (basic)');
        expect(tested.text).toContain('C: AUTH PLAIN ****');
        expect(tested.text).not.toContain(PASSWORD);
      });

      it('the mail queue page shows the error queue with the hint; Resend and Delete work from the page', async () => {
        const rejecting = await startTestSmtp({
          starttls: false,
          onData: () => ({ code: 550, message: '5.7.1 rejected by policy' }),
        });
        try {
          const srv = await api('POST', '/api/v1/smtp-servers', adminKey, {
            name: 'Rejecting',
            fromAddress: 'r@example.com',
            host: '127.0.0.1',
            port: rejecting.port,
          });
          const r = await api('POST', '/api/v1/messages', sendKey, {
            serverId: srv.body.id,
            to: 'x@example.net',
            subject: 'will fail',
            text: 't',
          });
          const failed = await waitForStatus(r.body.id as string, 'failed');
          expect(failed.lastError).toMatchObject({ responseCode: 550 });
          const sys = await app.browserSession('sysadmin');
          const page = await sys.get('/admin/mail-queue?status=failed');
          expect(page.res.status).toBe(200);
          expect(page.text).toContain('oldest waiting message');
          expect(page.text).toContain(`data-message-id="${r.body.id as string}"`);
          const detail = await sys.get(`/admin/mail-queue/${r.body.id as string}`);
          expect(detail.text).toContain('rejected by policy');
          const resend = await sys.postForm(`/admin/mail-queue/${r.body.id as string}/resend`);
          expect(resend.res.status).toBe(303);
          await waitForStatus(r.body.id as string, 'failed');
          // Deleting asks first; only the confirmed post deletes.
          const ask = await sys.postForm(`/admin/mail-queue/${r.body.id as string}/delete`);
          expect(ask.res.status).toBe(200);
          expect(ask.text).toContain('name="confirmed" value="yes"');
          expect((await api('GET', `/api/v1/messages/${r.body.id as string}`, sendKey)).status).toBe(200);
          const del = await sys.postForm(`/admin/mail-queue/${r.body.id as string}/delete`, { confirmed: 'yes' });
          expect(del.res.status).toBe(303);
          expect((await api('GET', `/api/v1/messages/${r.body.id as string}`, sendKey)).status).toBe(404);
          const admin = await app.browserSession('admin');
          expect((await admin.get('/admin/mail-queue')).res.status).toBe(200);
          expect((await admin.postForm('/admin/mail-queue/flush')).res.status).toBe(403);
        } finally {
          await rejecting.close();
        }
      });
    });
  });
}
