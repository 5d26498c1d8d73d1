import { describe, expect, it } from 'vitest';
import { decodeHeaderText, firstMailbox, MessageFormatError, parseHeaderBlock, rewriteHeaders } from './headers.js';

const server = { fromAddress: 'notify@example.com', username: 'box@example.com', emailPrefix: '[mg]' };
const now = new Date('2026-12-02T01:00:00Z');

function rewrite(block: string, s: Parameters<typeof rewriteHeaders>[1] = server) {
  return rewriteHeaders(parseHeaderBlock(block), s, now);
}

describe('the header rewrite of the submission front', () => {
  it('removes Bcc (any case, folded), prefixes the Subject, keeps everything else byte for byte', () => {
    const r = rewrite(
      'From: App <notify@example.com>\r\nTo: a@x.test\r\nBCC: b@x.test,\r\n\tc@x.test\r\nSubject: Hello\r\nX-Custom: caf\xc3\xa9\r\nMessage-ID: <1@x>\r\nDate: Tue, 1 Dec 2026 00:00:00 +0000',
    );
    expect(r.header).toBe(
      'From: App <notify@example.com>\r\nTo: a@x.test\r\nSubject: [mg] Hello\r\nX-Custom: caf\xc3\xa9\r\nMessage-ID: <1@x>\r\nDate: Tue, 1 Dec 2026 00:00:00 +0000\r\n',
    );
    expect(r.fromReplaced).toBe(false);
  });

  it('replaces a From the server may not send as, keeps the display name, the original becomes Reply-To', () => {
    const r = rewrite('From: "Jenkins CI" <ci@other.example>\r\nSubject: x');
    expect(r.header).toMatch(
      /^From: "Jenkins CI" <notify@example\.com>\r\nReply-To: "Jenkins CI" <ci@other\.example>\r\n/,
    );
    expect(r.from).toBe('ci@other.example');
  });

  it('keeps an existing Reply-To; accepts the mailbox (username) as a From', () => {
    expect(rewrite('From: ci@other.example\r\nReply-To: me@x.test').header).toMatch(
      /^From: notify@example\.com\r\nReply-To: me@x\.test\r\n/,
    );
    expect(rewrite('From: Box <BOX@example.com>').fromReplaced).toBe(false);
  });

  it('adds Message-ID and Date when missing, a Subject when there is a prefix', () => {
    const r = rewrite('From: notify@example.com');
    expect(r.header).toMatch(
      /\r\nSubject: \[mg\]\r\nMessage-ID: <[0-9a-f-]+@example\.com>\r\nDate: Wed, 02 Dec 2026 01:00:00 \+0000\r\n$/,
    );
  });

  it('folds a prefixed Subject that would pass 998 octets', () => {
    const r = rewrite(`From: notify@example.com\r\nSubject: ${'s'.repeat(990)}`);
    expect(r.header.split('\r\n').every((line) => line.length <= 998)).toBe(true);
  });

  it('refuses what it cannot read', () => {
    for (const block of [
      '',
      ' folded first',
      'no colon here',
      'Subject: x',
      'From: a@b.test\r\nFrom: c@d.test',
      'From: nobody',
    ])
      expect(() => rewrite(block), block).toThrow(MessageFormatError);
  });

  it('decodes encoded words for display', () => {
    expect(decodeHeaderText('=?UTF-8?B?44OG44K544OI?= =?UTF-8?Q?_ok?=')).toBe('テスト ok');
    expect(decodeHeaderText('caf\xc3\xa9')).toBe('café');
    expect(firstMailbox('a@b.test (Name), c@d.test')).toEqual({ display: '', address: 'a@b.test' });
  });
});
