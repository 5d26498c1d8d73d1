import { request } from 'node:http';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../fakes/app.js';

// The API's body parser reads plain UTF-8 JSON bodies itself and hands everything else (here: gzip) to
// express.json: both paths must answer every body the same, whatever the spelling of the content type.

let app: TestApp;
let key: string;

beforeAll(async () => {
  app = await startTestApp({ store: 'file' });
  key = await app.apiKey(['send']);
});
afterAll(async () => {
  await app?.close();
});

const FAST = 'application/json';
const SPELLINGS = ['application/json;charset=utf-8', 'Application/JSON', 'application/json; charset="UTF-8"'];

/** A POST with exactly these bytes and headers (fetch would add or normalise some). */
function post(
  body: Buffer,
  headers: Record<string, string>,
  path = '/api/v1/messages',
): Promise<{ status: number; code?: string }> {
  const url = new URL(`${app.url}${path}`);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-length': String(body.length), ...headers },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => {
          const parsed = text ? (JSON.parse(text) as { error?: { code: string } }) : {};
          resolve({ status: res.statusCode!, ...(parsed.error ? { code: parsed.error.code } : {}) });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const bodies: [string, string][] = [
  ['a valid message', JSON.stringify({ to: 'a@example.net', subject: 's', text: 't' })],
  ['a message with a missing field', JSON.stringify({ subject: 's', text: 't' })],
  ['broken JSON', '{"to": '],
  ['a JSON string (not strict)', '"to"'],
  ['null', 'null'],
  ['an array', '[1]'],
  ['leading blanks', ' \r\n\t{"to":"a@example.net","subject":"s","text":"t"}'],
  ['non-ASCII text', JSON.stringify({ to: 'a@example.net', subject: '件名', text: 'こんにちは' })],
];

describe('API JSON bodies', () => {
  for (const [label, text] of bodies) {
    it(`${label}: the same answer read here and through express.json`, async () => {
      const body = Buffer.from(text);
      const fast = await post(body, { 'content-type': FAST });
      for (const type of SPELLINGS) expect(await post(body, { 'content-type': type })).toEqual(fast);
      expect(await post(gzipSync(body), { 'content-type': FAST, 'content-encoding': 'gzip' })).toEqual(fast);
      // What the answers are: no server is configured, so a valid message gets as far as that.
      if (label === 'broken JSON' || label.startsWith('a JSON string') || label === 'null')
        expect(fast).toEqual({ status: 400, code: 'bad_request' });
      else expect(fast.status).not.toBe(202);
    });
  }

  it('a body over the limit (2 MB outside the send API) is refused with 413', async () => {
    const body = Buffer.from(`{"name":"${'x'.repeat(2 * 1024 * 1024)}"}`);
    const r = await post(body, { 'content-type': FAST }, '/api/v1/smtp-servers');
    expect(r).toEqual({ status: 413, code: 'payload_too_large' });
  });
});
