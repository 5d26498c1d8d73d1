/**
 * The DATA section of a raw message, byte for byte as nodemailer's DataStream writes it: a bare CR or a bare LF
 * becomes CRLF, a dot at the start of a line (also after a bare CR) is doubled, and the message ends with
 * CRLF "." CRLF (no CRLF added when it already ends with one). Built as one buffer, written in one go.
 */

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

const INSERT_LF = Buffer.from('\n');
const INSERT_LF_DOT = Buffer.from('\n.');
const INSERT_CR = Buffer.from('\r');
const INSERT_DOT = Buffer.from('.');
const END_AFTER_LF = Buffer.from('.\r\n');
const END_AFTER_CR = Buffer.from('\n.\r\n');
const END = Buffer.from('\r\n.\r\n');

export function dataBlock(raw: Buffer): Buffer {
  const parts: Buffer[] = [];
  let size = 0;
  let from = 0;
  let prev = -1;
  for (let i = 0; i < raw.length; i++) {
    const byte = raw[i]!;
    let insert: Buffer | undefined;
    if (prev === CR && byte !== LF) insert = byte === DOT ? INSERT_LF_DOT : INSERT_LF;
    else if (byte === LF && prev !== CR) insert = INSERT_CR;
    else if (byte === DOT && (prev === LF || prev === -1)) insert = INSERT_DOT;
    prev = byte;
    if (insert) {
      if (i > from) parts.push(raw.subarray(from, i));
      parts.push(insert);
      size += i - from + insert.length;
      from = i;
    }
  }
  const last = raw.length ? raw[raw.length - 1] : -1;
  const end = last === LF ? END_AFTER_LF : last === CR ? END_AFTER_CR : END;
  if (parts.length === 0) return Buffer.concat([raw, end], raw.length + end.length);
  parts.push(raw.subarray(from), end);
  return Buffer.concat(parts, size + (raw.length - from) + end.length);
}
