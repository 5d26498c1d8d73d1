import fc from 'fast-check';
import nodemailer from 'nodemailer';
import MailComposer from 'nodemailer/lib/mail-composer';
import { describe, expect, it } from 'vitest';
import { leaves, parseMime, type MimePart } from '../../test/fakes/mime.js';
import { decodeHeaderText } from '../submission/headers.js';
import { composeMessage, messageInput, withTextPart, type ComposedMessage, type SenderSettings } from './compose.js';
import { MAX_WRITTEN_CHARS, writeMime } from './mime-writer.js';
import { composedFields, toNodemailerMessage } from './nodemailer-message.js';

// The writer's bytes against nodemailer's own MailComposer output for the same message, as an SMTP server receives
// it (nodemailer's data stream turns every bare CR or LF into CRLF): parsed with the same reader, every header's
// decoded value and every part's decoded body must match, and so must the bytes once the boundary is set aside.

const SENDER: SenderSettings = { name: 'Relay', fromAddress: 'notify@example.com', emailPrefix: '[mg]' };
const NOW = new Date('2026-12-02T08:15:30Z');
const ID = '<a1b2c3@example.com>';

async function composedOf(body: Record<string, unknown>, sender = SENDER): Promise<ComposedMessage> {
  const input = await withTextPart(messageInput.parse(body));
  return composeMessage(input, sender, '{name} (mailgate)');
}

/** nodemailer's message for the same fields, with line breaks as its SMTP data stream sends them. */
async function nodemailerWire(message: ComposedMessage, bcc: string[] = []): Promise<string> {
  const fields = { ...composedFields(message, ID), date: NOW };
  if (bcc.length === 0) {
    const transport = nodemailer.createTransport({ streamTransport: true, buffer: true });
    const info = await transport.sendMail(fields);
    return (info.message as Buffer).toString('utf8').replace(/\r\n|\r|\n/g, '\r\n');
  }
  const node = new MailComposer({ ...fields, bcc }).compile();
  node.keepBcc = true;
  return (await node.build()).toString('utf8').replace(/\r\n|\r|\n/g, '\r\n');
}

const boundaryOf = (mime: string) => /boundary="([^"]+)"/.exec(mime.replace(/\r\n[ \t]/g, ' '))![1]!;

/**
 * The message with its boundary replaced, the Content-Type header unfolded (its folding follows the boundary's
 * length) and no soft line breaks in the body: nodemailer's quoted-printable stream places them by the chunks it is
 * given, so its own output for a text differs there from one call of its wrap(), which the writer uses.
 */
function comparable(mime: string): string {
  const replaced = mime
    .split(boundaryOf(mime))
    .join('BOUNDARY')
    .replace(/multipart\/alternative;\r\n boundary=/, 'multipart/alternative; boundary=');
  const head = replaced.indexOf('\r\n\r\n');
  return replaced.slice(0, head) + replaced.slice(head).replace(/=\r\n/g, '');
}

function decodedHeaders(part: MimePart): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of part.headers) if (name !== 'content-type') out[name] = decodeHeaderText(value);
  out['content-type'] = (part.headers.get('content-type') ?? '').replace(/boundary="[^"]+"/, '');
  return out;
}

function expectValid(mime: string): void {
  for (const line of mime.split('\r\n')) expect(Buffer.byteLength(line)).toBeLessThanOrEqual(998);
  expect(mime).not.toMatch(/\r(?!\n)|(?<!\r)\n/);
  expect(mime.endsWith('\r\n')).toBe(true);
  // Declared once, used as two delimiters and the close: nowhere in the content.
  expect(mime.split(boundaryOf(mime)).length - 1).toBe(4);
}

const many = (n: number, domain: string) => Array.from({ length: n }, (_, i) => `user${i}@${domain}`);

const corpus: Record<string, Record<string, unknown>> = {
  'ASCII text and html': { to: 'a@example.net', subject: 'Hello', text: 'Hi there.\nSecond line.', html: '<p>Hi</p>' },
  'Japanese subject, display name and bodies': {
    fromName: '山田 太郎',
    to: 'a@example.net',
    subject: '請求書のお知らせ（12月分）をお送りします。ご確認ください。',
    text: 'いつもお世話になっております。\n請求書を添付いたします。\n',
    html: '<p>いつもお世話になっております。</p>\n<p>請求書を添付いたします。</p>',
  },
  'emoji everywhere': {
    fromName: 'Party 🎉 Bot',
    to: 'a@example.net',
    subject: 'Party 🎉 time 🥳',
    text: 'Hello 👋 and 😀\n',
    html: '<p>Hello 👋</p>',
  },
  'a line over 998 characters and lines over 76': {
    to: 'a@example.net',
    subject: 's',
    text: `${'a'.repeat(1200)}\n${'word '.repeat(40)}\nshort`,
    html: `<p>${'b'.repeat(2000)}</p>`,
  },
  'lines starting with "." and "From "': {
    to: 'a@example.net',
    subject: 'dots',
    text: '.hidden\n..double\nFrom here on\n.\nend',
    html: '.<p>\nFrom a line</p>\n.',
  },
  'CRLF, LF and CR mixed, ASCII and Latin': {
    to: 'a@example.net',
    subject: 'breaks',
    text: 'one\r\ntwo\nthree\rfour\r\n\r\nend\n',
    html: '<p>Größe\r\nÄrger\rÖl\nüber  \r\n</p>',
  },
  'trailing whitespace and tabs': { to: 'a@example.net', subject: 'tab\there', text: 'col1\tcol2  \nend ', html: 'x ' },
  'empty text (derived from html)': { to: 'a@example.net', subject: 's', text: '', html: '<p>Only html</p>' },
  'html only, text derived': {
    to: 'a@example.net',
    subject: 's',
    html: '<h1>Title</h1><p>Para &amp; more <a href="https://example.com">link</a></p><ul><li>one</li></ul>',
  },
  'text only, html derived': { to: 'a@example.net', subject: 's', text: 'a < b & "c"\nline 2' },
  'custom headers, non-ASCII values included': {
    to: 'a@example.net',
    subject: 's',
    text: 't',
    headers: {
      'X-Campaign': 'Frühling 2026',
      'x-mc-id': 'plain-id',
      'X-Japanese': '日本語のヘッダー',
      'List-Unsubscribe': '<https://example.com/u?id=1>, <mailto:u@example.com>',
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
      'In-Reply-To': '<orig@example.com>',
      References: '<a@example.com>  <b @example.com> c@example.com',
      'X-Long': 'word '.repeat(150).trim(),
      'X-Quote': 'say "hi"',
      'X-Tie': 'éa',
      'X-Fake-Word': '=?utf-8?Q?not=20valid text?=',
      'X-Empty': '',
    },
  },
  'cc and replyTo, upper-case domains, an IP literal': {
    fromName: 'Acme, Inc. (Support)',
    to: ['A.User@EXAMPLE.net', 'b@[192.0.2.1]'],
    cc: ['c1@example.org', 'C2@Example.ORG'],
    bcc: 'hidden@example.com',
    replyTo: 'Reply@Example.COM',
    subject: 'cc',
    text: 't',
  },
  '100 recipients': { to: many(60, 'example.net'), cc: many(40, 'example.org'), subject: 'many', text: 't' },
  'mostly Latin text (quoted-printable)': {
    to: 'a@example.net',
    subject: 'Ärger über Öl',
    text: 'Ärger über Öl, déjà vu = ça. '.repeat(30),
    html: '<p>déjà vu</p>',
  },
  'long Japanese text (base64)': { to: 'a@example.net', subject: 's', text: '本文です。'.repeat(500) },
  'long ASCII subject without spaces': { to: 'a@example.net', subject: 'x'.repeat(480), text: 't' },
};

describe('the MIME writer against nodemailer', () => {
  for (const [name, body] of Object.entries(corpus)) {
    it(name, async () => {
      const message = await composedOf(body);
      const ours = writeMime(message, ID, { now: NOW })!.raw.toString('utf8');
      const theirs = await nodemailerWire(message);
      expectValid(ours);

      const a = parseMime(ours);
      const b = parseMime(theirs);
      expect(decodedHeaders(a)).toEqual(decodedHeaders(b));
      expect(a.type).toBe('multipart/alternative');
      expect(leaves(a).map((l) => decodedHeaders(l.part))).toEqual(leaves(b).map((l) => decodedHeaders(l.part)));
      expect(leaves(a).map((l) => l.part.body.toString('utf8'))).toEqual(
        leaves(b).map((l) => l.part.body.toString('utf8')),
      );
      expect(leaves(a).map((l) => l.part.type)).toEqual(['text/plain', 'text/html']);
      expect(comparable(ours)).toBe(comparable(theirs));
    });
  }

  it('keeps a Bcc header for the HTTP mail APIs, where MailComposer with keepBcc puts it', async () => {
    const message = await composedOf({
      to: 'a@example.net',
      cc: 'c@example.net',
      bcc: 'b@example.net',
      subject: 's',
      text: 't',
    });
    const ours = writeMime(message, ID, { now: NOW, bcc: ['b@example.net'] })!.raw.toString('utf8');
    expect(ours).toMatch(/^Bcc: b@example\.net$/m);
    expect(comparable(ours)).toBe(comparable(await nodemailerWire(message, ['b@example.net'])));
  });

  it('a boundary that a 7bit part holds is not used: the next one is taken', async () => {
    const first = writeMime(await composedOf({ to: 'a@example.net', subject: 's', text: 't' }), ID)!.raw.toString();
    const used = boundaryOf(first);
    const count = parseInt(used.slice(used.lastIndexOf('-') + 1), 36);
    const next = `${used.slice(0, used.lastIndexOf('-') + 1)}${(count + 1).toString(36)}`;
    const trap = `before\n--${next}\nContent-Type: text/html\n\n<p>forged</p>\n--${next}--\n`;
    const ours = writeMime(await composedOf({ to: 'a@example.net', subject: 's', text: trap }), ID)!.raw.toString();
    expect(boundaryOf(ours)).not.toBe(next);
    expectValid(ours);
    expect(leaves(parseMime(ours)).map((l) => l.part.type)).toEqual(['text/plain', 'text/html']);
  });

  it('boundaries differ from one message to the next', async () => {
    const message = await composedOf({ to: 'a@example.net', subject: 's', text: 't' });
    const seen = new Set(Array.from({ length: 50 }, () => boundaryOf(writeMime(message, ID)!.raw.toString())));
    expect(seen.size).toBe(50);
  });

  it('makes a Message-ID like nodemailer when none is given, and nodemailer reports it as the message id', async () => {
    const message = await composedOf({ to: 'a@example.net', subject: 's', text: 't' });
    const written = writeMime(message, undefined)!;
    expect(written.messageId).toMatch(/^<[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}@example\.com>$/);
    expect(written.raw.toString()).toContain(`\r\nMessage-ID: ${written.messageId}\r\n`);

    const transport = nodemailer.createTransport({ streamTransport: true, buffer: true });
    const given = await transport.sendMail(toNodemailerMessage(message, ID));
    expect(given.messageId).toBe(ID);
    const made = await transport.sendMail(toNodemailerMessage(message));
    expect(made.messageId).toMatch(/^<[0-9a-f-]{36}@example\.com>$/);
    expect((made.message as Buffer).toString()).toContain(`\r\nMessage-ID: ${made.messageId}\r\n`);
  });

  it('leaves messages with attachments, an empty part or over MAX_WRITTEN_CHARS to MailComposer', async () => {
    const withFile = await composedOf({
      to: 'a@example.net',
      subject: 's',
      text: 't',
      attachments: [{ filename: 'a.txt', content: Buffer.from('hello').toString('base64') }],
    });
    expect(writeMime(withFile, ID)).toBeNull();
    expect(toNodemailerMessage(withFile, ID)).not.toHaveProperty('raw');
    const plain = await composedOf({ to: 'a@example.net', subject: 's', text: 't' });
    expect(writeMime({ ...plain, text: '' }, ID)).toBeNull();
    expect(toNodemailerMessage({ ...plain, text: '' }, ID)).not.toHaveProperty('raw');
    expect(writeMime({ ...plain, to: ['"quoted"@example.net'] }, ID)).toBeNull();
    const large = { ...plain, text: 'x'.repeat(MAX_WRITTEN_CHARS - plain.html.length + 1) };
    expect(writeMime(large, ID)).toBeNull();
    expect(toNodemailerMessage(large, ID)).not.toHaveProperty('raw');
    expect(writeMime({ ...large, text: large.text.slice(1) }, ID)).not.toBeNull();
  });
});

describe('the MIME writer against nodemailer, for any accepted input', () => {
  // Text built from pieces that steer every encoding choice: ASCII words, Latin accents, CJK, emoji, specials of
  // encoded words and quoted-printable, every kind of line break, dots and "From " at line starts, long runs.
  const piece = fc.constantFrom(
    'word',
    'More',
    ' ',
    '  ',
    '\t',
    '\n',
    '\r\n',
    '\r',
    '.',
    '\n.',
    '\nFrom ',
    '=',
    '=?utf-8?Q?x?=',
    '"',
    '(',
    '_',
    '?',
    'é',
    'Größe',
    '日本語',
    '😀',
    'x'.repeat(70),
    'z'.repeat(76),
    'y'.repeat(1000),
  );
  const text = (max: number) => fc.array(piece, { maxLength: max }).map((p) => p.join(''));
  const oneLine = (max: number) => text(max).map((t) => t.replace(/[\r\n]+/g, ' '));
  const address = fc
    .tuple(
      fc.stringMatching(/^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,10}(\.[A-Za-z0-9_+-]{1,5})?$/),
      fc.stringMatching(/^[A-Za-z0-9]([A-Za-z0-9-]{0,6}[A-Za-z0-9])?$/),
      fc.constantFrom('com', 'NET', 'Org'),
    )
    .map(([l, d, t]) => `${l}@${d}.${t}`);
  const input = fc.record(
    {
      fromName: oneLine(6).map((n) => n.replace(/[<>@"]/g, '').slice(0, 100)),
      to: fc.array(address, { minLength: 1, maxLength: 4 }),
      cc: fc.array(address, { maxLength: 3 }),
      replyTo: address,
      subject: oneLine(12).map((v) => v.slice(0, 500)),
      text: text(30),
      html: text(30),
      headers: fc.record(
        {
          'X-Note': oneLine(8).map((v) => v.slice(0, 900)),
          'In-Reply-To': fc.constantFrom('<a@example.com>', 'b@example.com', '<c d@example.com>'),
          References: fc.constantFrom('<a@example.com> <b@example.com>', 'x@example.com  y@example.com'),
        },
        { requiredKeys: [] },
      ),
    },
    { requiredKeys: ['to', 'subject'] },
  );

  it('writes the bytes nodemailer sends, apart from the boundary', async () => {
    await fc.assert(
      fc.asyncProperty(input, async (body) => {
        const parsed = messageInput.safeParse({ text: 'fallback', ...body });
        fc.pre(parsed.success);
        const message = composeMessage(await withTextPart(parsed.data), SENDER, '{name} (mailgate)');
        const written = writeMime(message, ID, { now: NOW });
        fc.pre(written !== null);
        const ours = written.raw.toString('utf8');
        expectValid(ours);
        expect(comparable(ours)).toBe(comparable(await nodemailerWire(message)));
      }),
      { numRuns: 300 },
    );
  });
});
