import { describe, expect, it } from 'vitest';
import { ReplyReader, ReplyTooLarge } from './replies.js';

// Pipelined replies come as the network delivers them: several in one packet, one split over several, a split
// inside a CRLF or inside a UTF-8 character. However they are cut, the replies read must be the same.

const WIRE = Buffer.from(
  '250-mx.example ready\r\n250-PIPELINING\r\n250 8BITMIME\r\n' +
    '250 2.1.0 OK\r\n550 5.1.1 no such user\n354 go ahead\r\n250 2.0.0 queued as ABC ünï\r\n',
);

const EXPECTED = [
  { code: 250, text: '250-mx.example ready\n250-PIPELINING\n250 8BITMIME' },
  { code: 250, text: '250 2.1.0 OK' },
  { code: 550, text: '550 5.1.1 no such user' },
  { code: 354, text: '354 go ahead' },
  { code: 250, text: '250 2.0.0 queued as ABC ünï' },
];

describe('ReplyReader', () => {
  it('reads the same replies however the bytes are cut in three', () => {
    expect(new ReplyReader().push(WIRE)).toEqual(EXPECTED);
    const misread: { i: number; j: number }[] = [];
    for (let i = 0; i <= WIRE.length; i++) {
      for (let j = i; j <= WIRE.length; j++) {
        const reader = new ReplyReader();
        const replies = [
          ...reader.push(WIRE.subarray(0, i)),
          ...reader.push(WIRE.subarray(i, j)),
          ...reader.push(WIRE.subarray(j)),
        ];
        if (JSON.stringify(replies) !== JSON.stringify(EXPECTED)) misread.push({ i, j });
      }
    }
    expect(misread).toEqual([]);
  });

  it('keeps an unfinished reply for the report when the connection closes', () => {
    const reader = new ReplyReader();
    expect(reader.push(Buffer.from('250-first\r\n421 4.4.2 going'))).toEqual([]);
    expect(reader.leftover()).toBe('250-first\n421 4.4.2 going');
  });

  it('stops a peer that never ends a line', () => {
    const reader = new ReplyReader();
    const chunk = Buffer.alloc(64 * 1024, 'a');
    expect(() => {
      for (let i = 0; i < 20; i++) reader.push(chunk);
    }).toThrow(ReplyTooLarge);
  });
});
