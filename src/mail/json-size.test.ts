import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { messageInput } from './compose.js';
import { jsonByteLength } from './json-size.js';
import { messageSize } from './queue-limits.js';

// The queue's byte counters take this for Buffer.byteLength(JSON.stringify(value)): it must be that, exactly.

describe('jsonByteLength', () => {
  const cases: Record<string, unknown> = {
    'a message with a base64 attachment': {
      to: ['a@example.net'],
      subject: 'Invoice',
      text: 'Hello',
      attachments: [{ filename: 'f.pdf', content: randomBytes(3000).toString('base64'), cid: undefined }],
    },
    'escapes, control characters and non-ASCII': {
      subject: 'He said "hi" \\ \n\t\u0001\u007f é 件名 😀',
      html: '<p>\u2028\u2029</p>',
      headers: { 'X-A': 'ü', 'X-"B"': 'x' },
    },
    'lone surrogates (written as \\u escapes)': ['\ud83d', 'a\ude00b'],
    'numbers, booleans, null, nesting': { a: [1, -2.5, 1e21, 0, true, false, null, [], {}], b: { c: { d: 'e' } } },
    'undefined and functions skipped in objects, null in arrays': { a: undefined, b: () => 1, c: [undefined, () => 1] },
    'a date (toJSON)': { at: new Date(0) },
    'empty strings and keys': { '': '' },
  };
  for (const [label, value] of Object.entries(cases)) {
    it(label, () => {
      expect(jsonByteLength(value)).toBe(Buffer.byteLength(JSON.stringify(value)));
    });
  }
});

describe('messageSize', () => {
  it('is the stored input as JSON, in bytes, with or without attachments', () => {
    const base = { to: 'a@example.net', subject: 'Rechnung für März "2026"', text: 'é\n件名', headers: { 'X-A': 'b' } };
    const attachments = [
      { filename: 'a.bin', content: randomBytes(5000).toString('base64') },
      { filename: 'Bild ü.png', contentType: 'image/png', content: 'QQ==', cid: 'logo@example.com' },
    ];
    for (const body of [base, { ...base, attachments }, { ...base, attachments: [] }]) {
      const input = messageInput.parse(body);
      expect(messageSize(input)).toBe(Buffer.byteLength(JSON.stringify(input)));
    }
  });
});
