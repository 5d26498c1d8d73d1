import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { base64Stream, decodedLength, isStrictBase64 } from './attachments.js';
import { encodedMessageSize } from './message-size.js';

describe('strict base64', () => {
  it.each(['', 'QQ==', 'QUI=', 'QUJD', 'QUJDRA==', randomBytes(1000).toString('base64')])('accepts %j', (v) => {
    expect(isStrictBase64(v)).toBe(true);
    expect(decodedLength(v)).toBe(Buffer.from(v, 'base64').length);
  });
  it.each([
    'Q',
    'QQ=',
    'QUJD\n',
    'QU JD',
    ' QUJ',
    'QU-D',
    'QU_D',
    'QR==',
    'QUK=',
    'QQ==QUJD',
    '====',
    'QUJ*',
    'QUJD====',
  ])('refuses %j', (v) => {
    expect(isStrictBase64(v)).toBe(false);
  });

  it('checks a value of several megabytes piece by piece, to its last character', () => {
    const mib = 1024 * 1024;
    for (const bytes of [3 * mib, 3 * mib + 1, 3 * mib + 2, (3 * mib) / 4 + 1]) {
      const good = randomBytes(bytes).toString('base64');
      expect(isStrictBase64(good), `${bytes} bytes`).toBe(true);
      // A stray character in the second piece, right at the first piece's end, and in the last quantum.
      for (const at of [mib + 5, mib - 1, mib, good.length - 5]) {
        const bad = `${good.slice(0, at)}*${good.slice(at + 1)}`;
        expect(isStrictBase64(bad), `${bytes} bytes, * at ${at}`).toBe(false);
      }
    }
  });
});

describe('base64Stream', () => {
  it('yields the decoded bytes in pieces, identical to the file', async () => {
    const file = randomBytes(1024 * 1024 + 7);
    const pieces: Buffer[] = [];
    for await (const piece of base64Stream(file.toString('base64'))) pieces.push(piece as Buffer);
    expect(pieces.length).toBeGreaterThan(4);
    expect(Buffer.concat(pieces).equals(file)).toBe(true);
  });
});

describe('encodedMessageSize', () => {
  it('counts an attachment as base64 in 76-character lines, plus headers', () => {
    const content = randomBytes(300_000).toString('base64');
    const size = encodedMessageSize({
      to: ['a@example.com'],
      subject: 's',
      text: 't',
      attachments: [{ filename: 'f', content }],
    });
    expect(size).toBeGreaterThan(content.length + (content.length / 76) * 2);
    expect(size).toBeLessThan(content.length * 1.03 + 8192);
  });
});
