import { randomBytes } from 'node:crypto';
import nodemailer from 'nodemailer';
import { describe, expect, it } from 'vitest';
import { encodedMessageSize } from '../../src/mail/message-size.js';
import { composeMessage, messageInput, withTextPart } from '../../src/mail/compose.js';
import { toNodemailerMessage } from '../../src/mail/transport.js';

// MAILGATE_MAX_MESSAGE_BYTES limits the message as it will be sent. The check runs before anything is stored, on an
// estimate (of the input with its text part, as the API computes it): it must never be below what nodemailer then writes, and not far above it.

async function actualSize(body: unknown): Promise<{ actual: number; estimate: number }> {
  const input = await withTextPart(messageInput.parse(body));
  const composed = composeMessage(
    input,
    { name: 'Relay', fromAddress: 'notify@example.com', emailPrefix: '[mg]' },
    '{name} (mailgate)',
  );
  const transport = nodemailer.createTransport({ streamTransport: true, buffer: true });
  const info = await transport.sendMail(toNodemailerMessage(composed, '<id@example.com>'));
  return { actual: (info.message as Buffer).length, estimate: encodedMessageSize(input) };
}

describe('the size of a message as sent', () => {
  const cases: Record<string, unknown> = {
    'plain text': { to: 'a@example.net', subject: 'Hello', text: 'Hi there.\n'.repeat(2000) },
    'Japanese text and subject': { to: 'a@example.net', subject: '請求書のお知らせ', text: '本文です。'.repeat(5000) },
    'html only (text derived)': {
      to: 'a@example.net',
      subject: 's',
      html: '<p>Hello &amp; <b>world</b></p>'.repeat(3000),
    },
    'mostly Latin with accents': {
      to: 'a@example.net',
      subject: 's',
      text: 'Ärger über Öl, déjà vu = ça. '.repeat(3000),
    },
    'attachments with non-ASCII names and headers': {
      to: ['a@example.net', 'b@example.net'],
      cc: 'c@example.net',
      subject: 's',
      text: 't',
      headers: { 'X-Campaign': 'x'.repeat(200), 'List-Unsubscribe': '<https://example.com/u>' },
      attachments: [
        { filename: 'Bericht für März 2026 – endgültig.pdf', content: randomBytes(500_000).toString('base64') },
        { filename: 'logo.png', content: randomBytes(10_000).toString('base64'), cid: 'logo@example.com' },
        { filename: 'empty.txt', content: '' },
      ],
    },
  };
  for (const [name, body] of Object.entries(cases)) {
    it(`${name}: the estimate is at least the real size, and within a quarter above it`, async () => {
      const { actual, estimate } = await actualSize(body);
      console.log(`${name}: actual ${actual}, estimate ${estimate}`);
      expect(estimate).toBeGreaterThanOrEqual(actual);
      expect(estimate).toBeLessThan(actual * 1.25 + 8192);
    });
  }
});
