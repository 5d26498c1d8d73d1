import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { readMessage } from './reader.js';

/** Feeds `message` in chunks of every given size; the outcome must not depend on where chunks split. */
async function read(message: string, size: number) {
  const stream = new PassThrough();
  const outcome = readMessage(stream);
  const bytes = Buffer.from(message, 'latin1');
  for (let i = 0; i < bytes.length; i += size) stream.write(bytes.subarray(i, i + size));
  stream.end();
  return outcome;
}

const sizes = [1, 2, 3, 7, 64, 100_000];

describe('reading a DATA stream', () => {
  it('splits header and body wherever the chunks end', async () => {
    const message = 'From: a@b.test\r\nSubject: x\r\n\r\nline 1\r\n\r\nline 2\r\n';
    for (const size of sizes) {
      const r = await read(message, size);
      expect(r.ok, `chunks of ${size}`).toBe(true);
      if (!r.ok) continue;
      expect(r.header).toBe('From: a@b.test\r\nSubject: x');
      expect(Buffer.concat(r.body).toString('latin1')).toBe('line 1\r\n\r\nline 2\r\n');
    }
  });

  it.each([
    ['a bare LF in the header', 'From: a@b.test\nSubject: x\r\n\r\nbody\r\n', /bare LF/],
    ['a bare LF in the body', 'From: a@b.test\r\n\r\nbo\ndy\r\n', /bare LF/],
    ['a NUL', 'From: a@b.test\r\n\r\nbo\0dy\r\n', /NUL/],
    ['a body line of 999 octets', `From: a@b.test\r\n\r\n${'b'.repeat(999)}\r\n`, /longer than 998/],
    ['a header line of 999 octets', `Subject: ${'h'.repeat(990)}\r\n\r\nbody\r\n`, /longer than 998/],
  ])('refuses %s, wherever the chunks end', async (_what, message, reason) => {
    for (const size of sizes) {
      const r = await read(message, size);
      expect(r.ok, `chunks of ${size}`).toBe(false);
      if (!r.ok) expect(r.message).toMatch(reason);
    }
  });

  it('accepts lines of exactly 998 octets', async () => {
    for (const size of sizes) {
      const r = await read(`Subject: ${'h'.repeat(989)}\r\n\r\n${'b'.repeat(998)}\r\n`, size);
      expect(r.ok, `chunks of ${size}`).toBe(true);
    }
  });

  it('a message without a body is all header', async () => {
    const r = await read('From: a@b.test\r\nSubject: x\r\n', 5);
    expect(r).toMatchObject({ ok: true, header: 'From: a@b.test\r\nSubject: x', bodyBytes: 0 });
  });
});
