import { randomBytes, randomUUID } from 'node:crypto';
import * as base64 from 'nodemailer/lib/base64';
import {
  encodeWord,
  encodeWords,
  foldLines,
  hasLongerLines,
  isPlainText,
  quoteString,
} from 'nodemailer/lib/mime-funcs';
import * as qp from 'nodemailer/lib/qp';
import type { ComposedMessage } from './compose.js';

/**
 * The MIME message of an API message without attachments, written at once as one Buffer, with the structure and
 * encoding choices nodemailer's MailComposer would make (multipart/alternative, text then html, each part 7bit,
 * quoted-printable or base64 by its content; headers encoded and folded by nodemailer's own helpers, in its order).
 * Building it through MailComposer costs a tree of nodes, a chain of streams and fresh randomness for every
 * delivery; the bytes here are what reaches the server after nodemailer's SMTP data stream has made every line
 * break CRLF, so any sender can put them on the wire as they are (after dot-stuffing).
 *
 * Messages with attachments, large ones (MAX_WRITTEN_CHARS) and the rare message this writer leaves alone (an empty
 * part, an address outside the forms the API accepts) keep going through MailComposer: writeMime returns null.
 */

export interface WrittenMime {
  raw: Buffer;
  /** The Message-ID header's value: the one given, or one made like nodemailer's. */
  messageId: string;
}

export interface WriteOptions {
  /** A Bcc header for these addresses: the HTTP mail APIs take their recipients from the headers. */
  bcc?: string[];
  now?: Date;
}

/**
 * Text and html together, in characters, up to which a message is written here. The writer works in one go, and a
 * quoted-printable body costs about 40 ms per MB; MailComposer encodes a larger message in slices with turns of the
 * event loop between them, so no delivery holds up the API for more than a few milliseconds.
 */
export const MAX_WRITTEN_CHARS = 128 * 1024;

const ATEXT = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+";
// The addresses the API accepts (compose.ts): nodemailer writes them with the domain lower-cased, bare, or in
// angle brackets for an IPv4 literal. Anything else is left to nodemailer's own address handling.
const HOST_ADDRESS = new RegExp(`^${ATEXT}(?:\\.${ATEXT})*@(?:[A-Za-z0-9-]+\\.)+[A-Za-z0-9-]+$`);
const LITERAL_ADDRESS = new RegExp(`^${ATEXT}(?:\\.${ATEXT})*@\\[\\d{1,3}(?:\\.\\d{1,3}){3}\\]$`);
// eslint-disable-next-line no-control-regex
const UNSTRUCTURED_CONTROL = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/;
// eslint-disable-next-line no-control-regex
const MSG_ID_CONTROL = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g;
const LINE_BREAK = /\r?\n|\r/g;
const ANY_LINE_BREAK = /\r\n|\r|\n/g;

/** An address as nodemailer normalizes it (domain lower-cased), or null for one this writer does not take. */
function normalizedAddress(address: string): string | null {
  if (!HOST_ADDRESS.test(address) && !LITERAL_ADDRESS.test(address)) return null;
  const at = address.lastIndexOf('@');
  return address.slice(0, at + 1) + address.slice(at + 1).toLowerCase();
}

/** An address without a display name: bare, but in angle brackets when its domain is a literal. */
function bareMailbox(address: string): string {
  return address.endsWith(']') ? `<${address}>` : address;
}

/** nodemailer's choice for encoded words and bodies: Q when Latin letters outnumber the rest, else B. */
function textEncoding(value: string): 'Q' | 'B' {
  let nonLatin = 0;
  let latin = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c <= 0x08 || c === 0x0b || c === 0x0c || (c >= 0x0e && c <= 0x1f) || c >= 0x80) nonLatin++;
    else if ((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)) latin++;
  }
  return nonLatin < latin ? 'Q' : 'B';
}

function displayName(name: string): string {
  if (/^[\w ]*$/.test(name)) return name;
  if (/^[\x20-\x7e]*$/.test(name)) return quoteString(name);
  return encodeWord(name, textEncoding(name), 52);
}

/** An address list header value, or null when an address is not one this writer takes. */
function addressList(addresses: readonly string[]): string | null {
  const out: string[] = [];
  for (const a of addresses) {
    const normalized = normalizedAddress(a);
    if (normalized === null) return null;
    out.push(bareMailbox(normalized));
  }
  return out.join(', ');
}

function unstructured(value: string): string {
  const line = value.replace(LINE_BREAK, ' ');
  return UNSTRUCTURED_CONTROL.test(line)
    ? encodeWord(line, textEncoding(line), 52)
    : encodeWords(line, textEncoding(line), 52, true);
}

function msgId(value: string): string {
  let v = value.replace(LINE_BREAK, ' ').replace(MSG_ID_CONTROL, '');
  if (v.charAt(0) !== '<') v = `<${v}`;
  if (v.charAt(v.length - 1) !== '>') v = `${v}>`;
  return v;
}

/** The whitespace inside every <…> removed, as nodemailer does before splitting References into ids. */
function closeUpAngleBrackets(value: string): string {
  let result = '';
  let pos = 0;
  for (;;) {
    const open = value.indexOf('<', pos);
    if (open < 0) break;
    const close = value.indexOf('>', open + 1);
    if (close < 0) break;
    result += value.slice(pos, open) + value.slice(open, close + 1).replace(/\s/g, '');
    pos = close + 1;
  }
  return result + value.slice(pos);
}

function references(value: string): string {
  const cleaned = value.replace(LINE_BREAK, ' ').replace(MSG_ID_CONTROL, '').trim();
  return closeUpAngleBrackets(cleaned)
    .split(/\s+/)
    .map((id) => msgId(id))
    .join(' ')
    .trim();
}

/** A header name in nodemailer's spelling (Camel-Case, MIME and -ID upper-case). */
function headerName(name: string): string {
  return (
    name
      // eslint-disable-next-line no-control-regex
      .replace(/[\s\x00-\x20\x7f:]/g, '')
      .toLowerCase()
      .replace(/^X-SMTPAPI$|^(MIME|DKIM|ARC|BIMI)\b|^OTP(?=-Token$)|^[a-z]|-(SPF|FBL|ID|MD5)$|-[a-z]/gi, (c) =>
        c.toUpperCase(),
      )
      .replace(/^Content-Features$/i, 'Content-features')
  );
}

interface Part {
  encoding: '7bit' | 'quoted-printable' | 'base64';
  body: string;
}

/** A text part as nodemailer encodes it, with its line breaks as they go on the wire (CRLF). */
function encodePart(content: string): Part {
  if (isPlainText(content) && !hasLongerLines(content, 76))
    return { encoding: '7bit', body: content.replace(ANY_LINE_BREAK, '\r\n') };
  if (textEncoding(content) === 'Q')
    return { encoding: 'quoted-printable', body: qp.wrap(qp.encode(content), 76).replace(ANY_LINE_BREAK, '\r\n') };
  return { encoding: 'base64', body: base64.wrap(base64.encode(content), 76) };
}

let boundaryBase: string | undefined;
let boundaryCount = 0;

/**
 * A boundary unique per message: a random part drawn once per process and a counter. "=_" never occurs in
 * quoted-printable or base64 text, so only a 7bit part can hold it, and then the next one is taken.
 */
function boundaryFor(parts: Part[]): string {
  boundaryBase ??= randomBytes(8).toString('hex');
  for (;;) {
    const boundary = `--_MgP=_${boundaryBase}-${(++boundaryCount).toString(36)}`;
    if (!parts.some((p) => p.encoding === '7bit' && p.body.includes(boundary))) return boundary;
  }
}

/** A Message-ID like nodemailer's own: a UUID at the sender's domain. */
function newMessageId(envelopeFrom: string): string {
  const domain = envelopeFrom.slice(envelopeFrom.lastIndexOf('@') + 1).toLowerCase() || 'localhost';
  return `<${randomUUID()}@${domain}>`;
}

/** Whether writeMime takes this message (no attachments, both parts non-empty, not too large). */
export function isWritable(message: ComposedMessage): boolean {
  return (
    !message.attachments?.length &&
    message.text !== '' &&
    message.html !== '' &&
    message.text.length + message.html.length <= MAX_WRITTEN_CHARS
  );
}

/** The whole message as bytes, or null for one that MailComposer has to build (see above). */
export function writeMime(
  message: ComposedMessage,
  messageId: string | undefined,
  options: WriteOptions = {},
): WrittenMime | null {
  if (!isWritable(message)) return null;
  const from = normalizedAddress(message.from.address);
  const to = addressList(message.to);
  const cc = addressList(message.cc);
  const bcc = addressList(options.bcc ?? []);
  const replyTo = addressList(message.replyTo === undefined ? [] : [message.replyTo]);
  if (from === null || to === null || cc === null || bcc === null || replyTo === null) return null;

  const lines: string[] = [];
  const add = (name: string, value: string) => {
    if (value.trim()) lines.push(foldLines(`${name}: ${value}`, 76));
  };
  let inReplyTo = '';
  let refs = '';
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    const lower = name.toLowerCase();
    if (lower === 'in-reply-to') inReplyTo = value;
    else if (lower === 'references') refs = value;
    else if (value) add(headerName(name), unstructured(value));
  }
  add('From', message.from.name ? `${displayName(message.from.name)} <${from}>` : bareMailbox(from));
  add('To', to);
  add('Cc', cc);
  add('Bcc', bcc);
  add('Reply-To', replyTo);
  if (inReplyTo) add('In-Reply-To', msgId(inReplyTo));
  if (refs) add('References', references(refs));
  if (message.subject) add('Subject', unstructured(message.subject));
  const id = msgId(messageId || newMessageId(message.envelope.from));
  add('Message-ID', id);
  add('Date', (options.now ?? new Date()).toUTCString().replace(/GMT/, '+0000'));
  add('MIME-Version', '1.0');

  const text = encodePart(message.text);
  const html = encodePart(message.html);
  const boundary = boundaryFor([text, html]);
  add('Content-Type', `multipart/alternative; boundary="${boundary}"`);

  const mime =
    `${lines.join('\r\n')}\r\n\r\n` +
    `--${boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: ${text.encoding}\r\n\r\n` +
    `${text.body}\r\n` +
    `--${boundary}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: ${html.encoding}\r\n\r\n` +
    `${html.body}\r\n` +
    `--${boundary}--\r\n`;
  return { raw: Buffer.from(mime, 'utf8'), messageId: id };
}
