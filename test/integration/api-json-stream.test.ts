import { randomBytes } from 'node:crypto';
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MESSAGES, type MessageDoc } from '../../src/mail/queue.js';
import { STREAM_ABOVE } from '../../src/web/json-body.js';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { addLoopbackRelay } from '../fakes/loopback-relay.js';
import { filenameOf, leaves, parseMime } from '../fakes/mime.js';
import { startTestSmtp, type TestSmtp } from '../fakes/smtp-server.js';

// Bodies of the send API larger than STREAM_ABOVE are parsed as they arrive. Sent here over node:http in pieces of
// a few bytes (so chunk boundaries fall inside escapes, multi-byte characters and base64) they must give the same
// message, byte for byte up to the SMTP server; broken or non-object JSON gets the 400 a small body gets; a body
// over the limit gets its 413 while the client is still sending, and nothing is stored.

const PASSWORD = 'relay password 123';
const MAX_MESSAGE_BYTES = 1024 * 1024;
/** The single route takes MAILGATE_MAX_MESSAGE_BYTES plus 8 MiB of room for JSON escapes (message-intake.ts). */
const SINGLE_LIMIT = MAX_MESSAGE_BYTES + 8 * 1024 * 1024;
const MAX_BATCH_BYTES = 2 * 1024 * 1024;

interface Answer {
  status: number;
  body: { error?: { code: string; message: string }; id?: string; results?: { id?: string }[] };
}

let app: TestApp;
let smtp: TestSmtp;
let key: string;

beforeAll(async () => {
  smtp = await startTestSmtp({ starttls: false, allowInsecureAuth: true, auth: { user: 'relay', pass: PASSWORD } });
  app = await startTestApp({
    store: 'file',
    workers: true,
    env: { MAILGATE_MAX_MESSAGE_BYTES: String(MAX_MESSAGE_BYTES), MAILGATE_MAX_BATCH_BYTES: String(MAX_BATCH_BYTES) },
  });
  key = await app.apiKey(['send']);
  await addLoopbackRelay(app, smtp.port, PASSWORD);
});

afterAll(async () => {
  await app?.close();
  await smtp?.close();
});

/** A POST without Content-Length (chunked), and the promise of its answer. */
function open(path: string): { req: ClientRequest; answer: Promise<Answer> } {
  const url = new URL(`${app.url}${path}`);
  const req = request({
    host: url.hostname,
    port: url.port,
    path: url.pathname,
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
  });
  const answer = new Promise<Answer>((resolve, reject) => {
    req.on('response', (res: IncomingMessage) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) as Answer['body'] }));
    });
    req.on('error', reject);
  });
  return { req, answer };
}

/** Writes `bytes` in pieces of the given sizes (cycling), each in a turn of its own so they leave one by one. */
async function writeInPieces(req: ClientRequest, bytes: Buffer, sizes: number[]): Promise<void> {
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const size = sizes[i % sizes.length]!;
    if (!req.write(bytes.subarray(at, at + size))) await new Promise((r) => req.once('drain', r));
    else await nextTurn();
    at += size;
  }
}

async function storedCount(): Promise<number> {
  return (await app.store.list(MESSAGES)).length;
}

describe('large JSON bodies of the send API, parsed as they arrive', () => {
  it('a body in 1- and 7-byte pieces is stored and delivered with its attachments byte-identical', async () => {
    const large = randomBytes(300 * 1024);
    const small = Buffer.from('Zeile 1\r\nÄrger über Umlaute\n末尾\n');
    const image = randomBytes(2_000);
    const message = {
      to: 'dest@example.net',
      subject: 'Streamed 件名 "quoted" \\ 😀',
      html: '<p>Logo: <img src="cid:logo@mailgate.test"></p>\n<p>Ä "ü" \\ 😀</p>',
      attachments: [
        { filename: 'Bericht für März.txt', content: small.toString('base64') },
        { filename: 'large.bin', contentType: 'application/octet-stream', content: large.toString('base64') },
        {
          filename: 'logo.png',
          contentType: 'image/png',
          content: image.toString('base64'),
          cid: 'logo@mailgate.test',
        },
      ],
      headers: { 'X-Campaign': 'stream-test-1' },
    };
    const body = Buffer.from(JSON.stringify(message));
    expect(body.length).toBeGreaterThan(STREAM_ABOVE);
    const before = smtp.messages.length;
    const { req, answer } = open('/api/v1/messages');
    // Tiny pieces for the first and last 8 KB (the structure, escapes, non-ASCII text), larger ones between.
    const tail = body.length - 8192;
    await writeInPieces(req, body.subarray(0, 8192), [1, 7]);
    await writeInPieces(req, body.subarray(8192, tail), [4093, 7, 65536, 1]);
    await writeInPieces(req, body.subarray(tail), [7, 1]);
    req.end();
    const r = await answer;
    expect(r.status, JSON.stringify(r.body)).toBe(202);

    const stored = await app.store.get<MessageDoc>(MESSAGES, r.body.id!);
    const files = stored!.value.input.attachments!;
    expect(files.map((f) => f.filename)).toEqual(['Bericht für März.txt', 'large.bin', 'logo.png']);
    expect(Buffer.from(files[0]!.content, 'base64').equals(small)).toBe(true);
    expect(Buffer.from(files[1]!.content, 'base64').equals(large)).toBe(true);
    expect(Buffer.from(files[2]!.content, 'base64').equals(image)).toBe(true);
    expect(stored!.value.input.subject).toBe(message.subject);
    expect(stored!.value.input.html).toBe(message.html);

    await smtp.waitFor(before + 1);
    const mime = parseMime(smtp.messages[before]!.raw);
    const byName = new Map(leaves(mime).map((f) => [filenameOf(f.part), f.part]));
    expect(byName.get('Bericht für März.txt')?.body.equals(small)).toBe(true);
    expect(byName.get('large.bin')?.body.equals(large)).toBe(true);
    expect(byName.get('logo.png')?.body.equals(image)).toBe(true);
    expect(mime.headers.get('x-campaign')).toBe(message.headers['X-Campaign']);
  });

  it('a batch in small pieces is read the same way', async () => {
    const file = randomBytes(200 * 1024);
    const entry = (i: number) => ({
      to: `r${i}@example.net`,
      subject: `batch ${i}`,
      text: 'ü',
      attachments: [{ filename: 'f.bin', content: file.toString('base64') }],
    });
    const body = Buffer.from(JSON.stringify({ messages: [entry(1), entry(2)] }));
    expect(body.length).toBeGreaterThan(STREAM_ABOVE);
    const { req, answer } = open('/api/v1/messages/batch');
    await writeInPieces(req, body, [7, 1, 16384]);
    req.end();
    const r = await answer;
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    for (const result of r.body.results!) {
      const stored = await app.store.get<MessageDoc>(MESSAGES, result.id!);
      expect(Buffer.from(stored!.value.input.attachments![0]!.content, 'base64').equals(file)).toBe(true);
    }
  });

  it('broken JSON after the first 256 KB gets the 400 of a small broken body, nothing stored', async () => {
    const before = await storedCount();
    const small = await fetch(`${app.url}/api/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: '{"to": "a@example.net", "subject": }',
    });
    const expected = { status: small.status, body: (await small.json()) as Answer['body'] };
    expect(expected.status).toBe(400);
    expect(expected.body.error?.code).toBe('bad_request');

    const content = randomBytes(400 * 1024).toString('base64');
    for (const broken of [
      `{"to":"a@example.net","subject":"s","text":"t","attachments":[{"filename":"f","content":"${content}"}x]}`,
      `{"to":"a@example.net","subject":"s","text":"t","attachments":[{"filename":"f","content":"${content}\\q"}]}`,
      `{"to":"a@example.net","subject":"s","text":"t","attachments":[{"filename":"f","content":"${content}"}]`,
    ]) {
      const { req, answer } = open('/api/v1/messages');
      await writeInPieces(req, Buffer.from(broken), [65536, 7]);
      req.end();
      expect(await answer).toEqual(expected);
    }
    expect(await storedCount()).toBe(before);
  });

  it('a top level that is not an object or an array gets 400, large or small', async () => {
    for (const text of [`"${'A'.repeat(STREAM_ABOVE + 1000)}"`, '"to"', '12', 'null']) {
      const { req, answer } = open('/api/v1/messages');
      await writeInPieces(req, Buffer.from(text), [1, 65536]);
      req.end();
      const r = await answer;
      expect(r.status).toBe(400);
      expect(r.body.error?.code).toBe('bad_request');
    }
  });

  for (const [path, limit, code] of [
    ['/api/v1/messages', SINGLE_LIMIT, 'message_too_large'],
    ['/api/v1/messages/batch', MAX_BATCH_BYTES, 'payload_too_large'],
  ] as const) {
    it(`${path}: a body over the limit, sent in pieces, gets 413 ${code} before it ends; nothing stored`, async () => {
      const before = await storedCount();
      const { req, answer } = open(path);
      let answered = false;
      void answer.then(
        () => (answered = true),
        () => undefined,
      );
      const head = path.endsWith('batch')
        ? '{"messages":[{"to":"a@example.net","subject":"s","text":"'
        : '{"to":"a@example.net","subject":"s","text":"';
      req.write(head);
      let sent = head.length;
      const piece = Buffer.alloc(64 * 1024, 'a');
      // Up to 2 MB past the limit, never ended: a parser that waited for the end would never answer.
      while (!answered && sent < limit + 2 * 1024 * 1024) {
        const drained = req.write(piece);
        sent += piece.length;
        if (!drained) await Promise.race([new Promise((r) => req.once('drain', r)), answer.catch(() => undefined)]);
        else await nextTurn();
      }
      const r = await answer;
      expect(r.status).toBe(413);
      expect(r.body.error?.code).toBe(code);
      expect(sent).toBeGreaterThan(limit);
      expect(req.writableEnded).toBe(false);
      req.destroy();
      expect(await storedCount()).toBe(before);
    });
  }
});
