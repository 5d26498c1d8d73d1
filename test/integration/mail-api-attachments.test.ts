import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MESSAGES } from '../../src/mail/queue.js';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { addLoopbackRelay } from '../fakes/loopback-relay.js';
import { filenameOf, leaves, parseMime } from '../fakes/mime.js';
import { redisUrlForTests } from '../fakes/redis.js';
import { startTestSmtp, type TestSmtp } from '../fakes/smtp-server.js';

// What a real app sends over the JSON API (attachments, inline images, custom headers) arrives at a real SMTP
// server byte for byte, and what may not be sent is refused with the field named and nothing stored.

const PASSWORD = 'relay password 123';
const MAX_MESSAGE_BYTES = 256 * 1024;

/** An answer of the API: an error, or what the route returns. */
interface Body {
  error: { code: string; message: string; details: { field: string; message: string }[] };
  results?: unknown;
}

for (const kind of ['file', 'redis'] as const) {
  describe.skipIf(kind === 'redis' && !redisUrlForTests())(`attachments and headers on the ${kind} store`, () => {
    let app: TestApp;
    let smtp: TestSmtp;
    let sendKey: string;

    async function send(body: unknown, raw?: string) {
      const res = await fetch(`${app.url}/api/v1/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${sendKey}`, 'content-type': 'application/json' },
        body: raw ?? JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, text, body: JSON.parse(text) as Body };
    }

    beforeAll(async () => {
      smtp = await startTestSmtp({ starttls: false, allowInsecureAuth: true, auth: { user: 'relay', pass: PASSWORD } });
      app = await startTestApp({
        store: kind,
        workers: true,
        env: { MAILGATE_MAX_MESSAGE_BYTES: String(MAX_MESSAGE_BYTES) },
      });
      sendKey = await app.apiKey(['send']);
      await addLoopbackRelay(app, smtp.port, PASSWORD);
    });

    afterAll(async () => {
      await app?.close();
      await smtp?.close();
    });

    it('a binary file, a text file with a non-ASCII name and an inline image arrive byte-identical', async () => {
      // Every byte value, and the sequences that trip naive encoders (CRLF, a lone dot line, NUL).
      const binary = Buffer.concat([
        Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
        Buffer.from('\r\n.\r\n\0\0\r'),
        randomBytes(40_000),
      ]);
      const image = randomBytes(3_000);
      const text = Buffer.from('Zeile 1\r\nÄrger über Umlaute\n末尾\n');
      const before = smtp.messages.length;
      const r = await send({
        to: 'dest@example.net',
        subject: 'With files',
        html: '<p>Logo: <img src="cid:logo@mailgate.test" alt="logo"></p>',
        attachments: [
          { filename: 'data.bin', contentType: 'application/octet-stream', content: binary.toString('base64') },
          {
            filename: 'logo.png',
            contentType: 'image/png',
            content: image.toString('base64'),
            cid: 'logo@mailgate.test',
          },
          { filename: 'Bericht für März.txt', content: text.toString('base64') },
        ],
        headers: {
          'X-Campaign': 'spring-2026',
          'List-Unsubscribe': '<https://example.com/u?id=1>, <mailto:unsub@example.com>',
          'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
          'In-Reply-To': '<original-1@example.com>',
          References: '<root@example.com> <original-1@example.com>',
        },
      });
      expect(r.status, r.text).toBe(202);
      await smtp.waitFor(before + 1);
      const received = smtp.messages[before]!;
      const mime = parseMime(received.raw);
      const files = leaves(mime);
      const byName = new Map(files.map((f) => [filenameOf(f.part), f]));
      expect(byName.get('data.bin')?.part.body.equals(binary)).toBe(true);
      expect(byName.get('Bericht für März.txt')?.part.body.equals(text)).toBe(true);
      const logo = byName.get('logo.png')!;
      expect(logo.part.body.equals(image)).toBe(true);
      expect(logo.part.headers.get('content-id')).toBe('<logo@mailgate.test>');
      expect(logo.part.headers.get('content-disposition')).toMatch(/^inline/);
      // The inline image sits with the html in multipart/related; the text part is still there.
      expect(logo.parents).toContain('multipart/related');
      expect(files.some((f) => f.part.type === 'text/plain')).toBe(true);
      expect(files.find((f) => f.part.type === 'text/html')?.part.body.toString()).toContain('cid:logo@mailgate.test');

      expect(mime.headers.get('x-campaign')).toBe('spring-2026');
      expect(mime.headers.get('list-unsubscribe')).toBe('<https://example.com/u?id=1>, <mailto:unsub@example.com>');
      expect(mime.headers.get('list-unsubscribe-post')).toBe('List-Unsubscribe=One-Click');
      expect(mime.headers.get('in-reply-to')).toBe('<original-1@example.com>');
      expect(mime.headers.get('references')).toBe('<root@example.com> <original-1@example.com>');
      expect(received.to).toEqual(['dest@example.net']);
    });

    it('headers mailgate sets itself, or with a line break, are refused naming the header; nothing is stored', async () => {
      const before = (await app.store.list(MESSAGES)).length;
      const base = { to: 'a@example.net', subject: 's', text: 't' };
      const cases: Array<[Record<string, string>, string]> = [
        [{ Bcc: 'evil@example.org' }, 'headers.Bcc'],
        [{ Subject: 'other' }, 'headers.Subject'],
        [{ From: 'ceo@example.com' }, 'headers.From'],
        [{ 'Content-Type': 'text/plain' }, 'headers.Content-Type'],
        [{ 'Reply-To': 'x@example.com' }, 'headers.Reply-To'],
        [{ 'X-Ok': 'fine', 'X-Inject': 'a\r\nBcc: evil@example.org' }, 'headers.X-Inject'],
        [{ 'X-Nul': 'a\0b' }, 'headers.X-Nul'],
        [{ 'X-Bad Name': 'v' }, 'headers.X-Bad Name'],
        [{ 'X-Long': 'v'.repeat(1000) }, 'headers.X-Long'],
        [{ 'X-Twice': '1', 'x-twice': '2' }, 'headers.x-twice'],
      ];
      for (const [headers, field] of cases) {
        const r = await send({ ...base, headers });
        expect(r.status, JSON.stringify(headers)).toBe(400);
        expect(r.body.error.code).toBe('validation_failed');
        expect(
          r.body.error.details.map((d) => d.field),
          r.text,
        ).toContain(field);
      }
      expect((await app.store.list(MESSAGES)).length).toBe(before);
    });

    it('attachment content must be strict base64, named attachments[i].content; other fields named too', async () => {
      const before = (await app.store.list(MESSAGES)).length;
      const base = { to: 'a@example.net', subject: 's', text: 't' };
      const good = { filename: 'ok.txt', content: 'b2s=' };
      const bad = ['QUJD\n', 'QU JD', 'QU-D', 'QU_D', 'QUJ', 'QR==', 'QQ==QUJD', '====', 'QUJD*AAA'];
      for (const content of bad) {
        const r = await send({ ...base, attachments: [good, { filename: 'x.bin', content }] });
        expect(r.status, JSON.stringify(content)).toBe(400);
        expect(r.body.error.details.map((d) => d.field)).toContain('attachments[1].content');
      }
      const others: Array<[Record<string, unknown>, string]> = [
        [{ filename: '', content: 'b2s=' }, 'attachments[0].filename'],
        [{ filename: 'a/b.txt', content: 'b2s=' }, 'attachments[0].filename'],
        [{ filename: 'a\r\nb.txt', content: 'b2s=' }, 'attachments[0].filename'],
        [{ filename: 'a.txt', content: 'b2s=', contentType: 'text/plain\r\nX-A: b' }, 'attachments[0].contentType'],
        [{ filename: 'a.txt', content: 'b2s=', cid: 'a b' }, 'attachments[0].cid'],
        [{ filename: 'a.txt', content: 'b2s=', extra: 1 }, 'attachments[0]'],
      ];
      for (const [attachment, field] of others) {
        const r = await send({ ...base, attachments: [attachment] });
        expect(r.status, JSON.stringify(attachment)).toBe(400);
        expect(r.body.error.details.map((d) => d.field)).toContain(field);
      }
      // Empty files and every base64 length are fine.
      for (const content of ['', 'QQ==', 'QUI=', 'QUJD']) {
        const r = await send({ ...base, attachments: [{ filename: 'f', content }] });
        expect(r.status, r.text).toBe(202);
      }
      expect((await app.store.list(MESSAGES)).length).toBe(before + 4);
    });

    it('a message larger than MAILGATE_MAX_MESSAGE_BYTES as sent gets 413 message_too_large, nothing stored', async () => {
      const before = (await app.store.list(MESSAGES)).length;
      // 200 KiB of file is about 270 KiB as base64 in lines: over the 256 KiB limit although the bytes are under it.
      const file = randomBytes(200 * 1024).toString('base64');
      const r = await send({
        to: 'a@example.net',
        subject: 's',
        text: 't',
        attachments: [{ filename: 'f', content: file }],
      });
      expect(r.status, r.text).toBe(413);
      expect(r.body.error.code).toBe('message_too_large');
      // A body too large even to be parsed gets the same answer.
      const huge = `{"to":"a@example.net","subject":"s","text":"${'x'.repeat(MAX_MESSAGE_BYTES + 9 * 1024 * 1024)}"}`;
      const r2 = await send(undefined, huge);
      expect(r2.status).toBe(413);
      expect(r2.body.error.code).toBe('message_too_large');
      expect((await app.store.list(MESSAGES)).length).toBe(before);
      // Just under the limit is accepted.
      const fits = randomBytes(150 * 1024).toString('base64');
      const ok = await send({
        to: 'a@example.net',
        subject: 's',
        text: 't',
        attachments: [{ filename: 'f', content: fits }],
      });
      expect(ok.status, ok.text).toBe(202);
    });
  });
}
