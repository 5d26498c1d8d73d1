import { randomUUID } from 'node:crypto';

/**
 * The header block of a submitted message: parsed and rewritten, the body never looked at. Works on the bytes as
 * latin1 text (one character per byte), so 8-bit and UTF-8 header bytes pass through unchanged, and every step is
 * one linear pass over a block the reader has already bounded (MAX_HEADER_BYTES, lines of at most 998 octets).
 *
 * The only changes (DESIGN.md, "Apps that only speak SMTP"): Bcc removed; the server's emailPrefix put before the
 * Subject; a From the server may not send as replaced by the server's fromAddress with the display name kept, the
 * original becoming Reply-To when there is none. Message-ID and Date are added when missing, as a submission
 * server does (RFC 6409 §8), since the message leaves as it is.
 */

export interface HeaderField {
  /** Lower-case field name. */
  name: string;
  /** The whole field as received (latin1), folding kept, without the final CRLF. */
  raw: string;
}

export class MessageFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MessageFormatError';
  }
}

const FIELD_NAME = /^([\x21-\x39\x3b-\x7e]+)[ \t]*:/;

/** The fields of a header block (without the empty line that ends it); throws MessageFormatError when malformed. */
export function parseHeaderBlock(block: string): HeaderField[] {
  const fields: HeaderField[] = [];
  if (block.length === 0) throw new MessageFormatError('the message has no header fields');
  for (const line of block.split('\r\n')) {
    if (line.startsWith(' ') || line.startsWith('\t')) {
      const last = fields[fields.length - 1];
      if (!last) throw new MessageFormatError('the message starts with a folded line instead of a header field');
      last.raw += `\r\n${line}`;
      continue;
    }
    const m = FIELD_NAME.exec(line);
    if (!m) throw new MessageFormatError(`a header line is not "Name: value": ${JSON.stringify(line.slice(0, 60))}`);
    fields.push({ name: m[1]!.toLowerCase(), raw: line });
  }
  return fields;
}

/** The unfolded value of a field. */
export function valueOf(field: HeaderField): string {
  return field.raw
    .slice(field.raw.indexOf(':') + 1)
    .replace(/\r\n(?=[ \t])/g, '')
    .trim();
}

export interface Mailbox {
  /** The display name as it was written (quoted or encoded words kept), or '' when none. */
  display: string;
  address: string;
}

const ADDRESS_CHARS = /^[^\s<>()",;:@\\]+@[^\s<>()",;:@\\]+$/;

/** The first mailbox of an address header value (`Name <a@b>`, `a@b (Name)`, `a@b`), or null. */
export function firstMailbox(value: string): Mailbox | null {
  const lt = value.indexOf('<');
  if (lt >= 0) {
    const gt = value.indexOf('>', lt);
    if (gt < 0) return null;
    const address = value.slice(lt + 1, gt).trim();
    return ADDRESS_CHARS.test(address) ? { display: value.slice(0, lt).trim(), address } : null;
  }
  const first = value
    .split(',')[0]!
    .replace(/\([^)]*\)/g, '')
    .trim();
  return ADDRESS_CHARS.test(first) ? { display: '', address: first } : null;
}

/** Every address mentioned in address headers (lower case), for telling To, Cc and Bcc recipients apart. */
export function addressesIn(value: string): Set<string> {
  const out = new Set<string>();
  for (const m of value.matchAll(/[^\s<>()",;:@\\]+@[^\s<>()",;:@\\]+/g)) out.add(m[0].toLowerCase());
  return out;
}

const ENCODED_WORD = /=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=/g;

function decodeWord(charset: string, encoding: string, text: string): string | null {
  try {
    const bytes =
      encoding.toUpperCase() === 'B'
        ? Buffer.from(text, 'base64')
        : Buffer.from(
            text
              .replace(/_/g, ' ')
              .replace(/=([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))),
            'latin1',
          );
    return new TextDecoder(charset.split('*')[0]!.toLowerCase(), { fatal: false }).decode(bytes);
  } catch {
    return null;
  }
}

/** A header value as people read it: UTF-8 bytes and RFC 2047 encoded words decoded. */
export function decodeHeaderText(latin1: string): string {
  const utf8 = Buffer.from(latin1, 'latin1').toString('utf8');
  // Whitespace between two encoded words is not shown (RFC 2047 §6.2).
  const joined = utf8.replace(/(\?=)[ \t\r\n]+(?==\?)/g, '$1');
  return joined.replace(ENCODED_WORD, (whole, cs: string, enc: string, text: string) => {
    return decodeWord(cs, enc, text) ?? whole;
  });
}

/** Text for a header: as it is when printable ASCII, else one RFC 2047 encoded word. */
export function encodeHeaderText(text: string): string {
  if (/^[\x20-\x7e]*$/.test(text)) return text;
  return `=?UTF-8?B?${Buffer.from(text, 'utf8').toString('base64')}?=`;
}

/** The server fields that decide the rewrite. */
export interface RewriteServer {
  fromAddress: string;
  username: string | null;
  emailPrefix: string | null;
  /** Further addresses the server may send as (absent until servers carry a list). */
  sendAs?: readonly string[] | undefined;
}

export interface RewriteResult {
  /** The new header block, CRLF-terminated lines (latin1 bytes), without the empty line. */
  header: string;
  /** The header From address as submitted (what a key's allowedFrom is checked against). */
  from: string;
  /** The Subject as submitted, decoded for people. */
  subject: string;
  /** Addresses in To and Cc (lower case). */
  to: Set<string>;
  cc: Set<string>;
  fromReplaced: boolean;
}

const MAX_LINE = 998;

/** `Name: value`, folded before `rest` when the line would pass 998 octets. */
function field(name: string, first: string, rest = ''): string {
  const line = `${name}: ${first}${rest ? ` ${rest}` : ''}`;
  if (line.length <= MAX_LINE || !rest) return line;
  return `${name}: ${first}\r\n ${rest}`;
}

/** The Date header format of RFC 5322 (`Wed, 02 Dec 2026 01:47:33 +0000`). */
function rfc5322Date(now: Date): string {
  return now.toUTCString().replace(/GMT$/, '+0000');
}

export function rewriteHeaders(fields: HeaderField[], server: RewriteServer, now: Date): RewriteResult {
  const froms = fields.filter((f) => f.name === 'from');
  if (froms.length !== 1)
    throw new MessageFormatError(
      froms.length === 0 ? 'the message has no From header' : 'the message has two From headers',
    );
  const fromValue = valueOf(froms[0]!);
  const mailbox = firstMailbox(fromValue);
  if (!mailbox) throw new MessageFormatError('the From header holds no address mailgate can read');
  const allowed = new Set(
    [server.fromAddress, server.username ?? '', ...(server.sendAs ?? [])].filter(Boolean).map((a) => a.toLowerCase()),
  );
  const fromReplaced = !allowed.has(mailbox.address.toLowerCase());
  const hasReplyTo = fields.some((f) => f.name === 'reply-to');
  const subjectField = fields.find((f) => f.name === 'subject');
  const prefix = server.emailPrefix ? encodeHeaderText(server.emailPrefix) : '';
  const to = new Set<string>();
  const cc = new Set<string>();
  const out: string[] = [];
  for (const f of fields) {
    if (f.name === 'bcc') continue;
    if (f.name === 'to') for (const a of addressesIn(valueOf(f))) to.add(a);
    if (f.name === 'cc') for (const a of addressesIn(valueOf(f))) cc.add(a);
    if (f.name === 'from' && fromReplaced) {
      out.push(field('From', mailbox.display ? `${mailbox.display} <${server.fromAddress}>` : server.fromAddress));
      if (!hasReplyTo) out.push(field('Reply-To', fromValue));
      continue;
    }
    if (f === subjectField && prefix) {
      out.push(field('Subject', prefix, valueOf(f)));
      continue;
    }
    out.push(f.raw);
  }
  if (!subjectField && prefix) out.push(field('Subject', prefix));
  if (!fields.some((f) => f.name === 'message-id')) {
    const domain = server.fromAddress.slice(server.fromAddress.lastIndexOf('@') + 1);
    out.push(`Message-ID: <${randomUUID()}@${domain}>`);
  }
  if (!fields.some((f) => f.name === 'date')) out.push(`Date: ${rfc5322Date(now)}`);
  return {
    header: `${out.join('\r\n')}\r\n`,
    from: mailbox.address,
    subject: subjectField ? decodeHeaderText(valueOf(subjectField)).slice(0, 500) : '',
    to,
    cc,
    fromReplaced,
  };
}
