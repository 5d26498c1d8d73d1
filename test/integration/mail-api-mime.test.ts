import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { composeMessage, messageInput } from '../../src/mail/compose.js';
import { createMailTransport } from '../../src/mail/transport.js';
import { decodeHeaderText } from '../../src/submission/headers.js';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { addLoopbackRelay } from '../fakes/loopback-relay.js';
import { resolvedServerForTests } from '../fakes/mail-services.js';
import { leaves, parseMime } from '../fakes/mime.js';
import { startTestSmtp, type TestSmtp } from '../fakes/smtp-server.js';

// An API message without attachments leaves as MIME bytes written once by mailgate (src/mail/mime-writer.ts) and
// sent by nodemailer as they are: what the SMTP server receives has the headers and bodies the request asked for,
// the queue's Message-ID, and lines starting with a dot or "From " intact (dot-stuffing undone by the server).

const PASSWORD = 'relay password 123';
let app: TestApp;
let smtp: TestSmtp;
let key: string;

beforeAll(async () => {
  smtp = await startTestSmtp({ starttls: false, allowInsecureAuth: true, auth: { user: 'relay', pass: PASSWORD } });
  app = await startTestApp({ store: 'file', workers: true });
  key = await app.apiKey(['send']);
  await addLoopbackRelay(app, smtp.port, PASSWORD);
});

afterAll(async () => {
  await app?.close();
  await smtp?.close();
});

const header = (mime: ReturnType<typeof parseMime>, name: string) => decodeHeaderText(mime.headers.get(name) ?? '');

describe('an API message on its way to the SMTP server', () => {
  it('arrives with the headers and bodies that were asked for, and the Message-ID of its queue id', async () => {
    const body = {
      fromName: '山田 太郎',
      to: ['Dest@Example.NET', 'second@example.net'],
      cc: 'copy@example.net',
      bcc: 'hidden@example.net',
      replyTo: 'reply@example.com',
      subject: '請求書 🎉 invoice for December',
      text: '.leading dot\r\nFrom the start\nLatin: Größe\rend',
      html: '<p>日本語 😀</p>\n.\n<p>done</p>',
      headers: {
        'X-Campaign': 'Frühling 2026',
        'In-Reply-To': '<orig@example.com>',
        References: '<a@example.com> <orig@example.com>',
      },
    };
    const before = smtp.messages.length;
    const res = await fetch(`${app.url}/api/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };

    await smtp.waitFor(before + 1);
    const got = smtp.messages[before]!;
    expect(got.from).toBe('notify@example.com');
    expect(got.to).toEqual(['Dest@example.net', 'second@example.net', 'copy@example.net', 'hidden@example.net']);

    const mime = parseMime(got.raw);
    expect(mime.type).toBe('multipart/alternative');
    expect(header(mime, 'from')).toMatch(/^山田 太郎.*<notify@example\.com>$/);
    expect(header(mime, 'to')).toBe('Dest@example.net, second@example.net');
    expect(header(mime, 'cc')).toBe('copy@example.net');
    expect(header(mime, 'reply-to')).toBe('reply@example.com');
    expect(header(mime, 'subject')).toBe(body.subject);
    expect(header(mime, 'x-campaign')).toBe('Frühling 2026');
    expect(header(mime, 'in-reply-to')).toBe('<orig@example.com>');
    expect(header(mime, 'references')).toBe('<a@example.com> <orig@example.com>');
    expect(header(mime, 'message-id')).toBe(`<${id}@example.com>`);
    expect(header(mime, 'mime-version')).toBe('1.0');
    expect(mime.headers.has('date')).toBe(true);
    expect(mime.headers.has('bcc')).toBe(false);

    const parts = leaves(mime).map((l) => l.part);
    expect(parts.map((p) => p.type)).toEqual(['text/plain', 'text/html']);
    // On the wire every line break is CRLF.
    expect(parts[0]!.body.toString('utf8')).toBe('.leading dot\r\nFrom the start\r\nLatin: Größe\r\nend');
    expect(parts[1]!.body.toString('utf8')).toBe(body.html.replace(/\n/g, '\r\n'));
    expect(got.raw).not.toMatch(/\r(?!\n)|(?<!\r)\n/);
  });

  it('a send without a queue id (a test email) reports the Message-ID the message carries', async () => {
    const server = resolvedServerForTests({ id: 'srv_mime', port: smtp.port, tls: false });
    const transport = createMailTransport({ log: createLogger({ level: 'silent' }) });
    try {
      const before = smtp.messages.length;
      const message = composeMessage(
        messageInput.parse({ to: 'a@example.net', subject: 'test email', text: 'hello' }),
        server,
        '{name}',
      );
      const sent = await transport.send(
        { ...server, authMethod: 'basic', username: 'relay', password: PASSWORD },
        message,
      );
      await smtp.waitFor(before + 1);
      expect(sent.messageId).toMatch(/^<[0-9a-f-]{36}@example\.com>$/);
      expect(parseMime(smtp.messages[before]!.raw).headers.get('message-id')).toBe(sent.messageId);
      expect(sent.accepted).toEqual(['a@example.net']);
    } finally {
      await transport.close();
    }
  });
});
