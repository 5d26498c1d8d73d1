import { textToHtml, type MessageInput } from './compose.js';

/**
 * The size of a message as it will be sent (MIME, encoded), before it is stored: what MAILGATE_MAX_MESSAGE_BYTES
 * limits. It is computed, not built: building a 25 MB message to measure it would cost as much as sending it. The
 * figure is an upper bound that follows nodemailer's choices (quoted-printable for mostly Latin text, base64
 * otherwise, base64 in 76-character lines for files), checked against nodemailer in test/unit/encoded-size.test.ts.
 */

/** A base64 body of this many characters in lines of 76 with CRLF. */
export function base64Lines(chars: number): number {
  return chars + Math.ceil(chars / 76) * 2;
}

/** A text part as nodemailer encodes it. */
export function encodedTextSize(text: string): number {
  let latin = 0;
  let nonLatin = 0;
  let ascii = 0;
  let escapedAscii = 0;
  let newlines = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) ascii++;
    if (c === 0x0a) newlines++;
    if (c >= 0x80 || c <= 0x08 || c === 0x0b || c === 0x0c || (c >= 0x0e && c <= 0x1f)) nonLatin++;
    else if ((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)) latin++;
    if (c === 0x3d || (c < 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09)) escapedAscii++;
  }
  const bytes = Buffer.byteLength(text);
  // Line breaks become CRLF; base64 covers the CRLF form.
  const base64 = base64Lines(Math.ceil((bytes + newlines) / 3) * 4);
  if (nonLatin >= latin) return base64;
  // Quoted-printable: every byte outside printable ASCII (and '=') takes 3 octets, a soft break every 73.
  const escaped = bytes - ascii + escapedAscii;
  const body = bytes + newlines + escaped * 2;
  return body + Math.ceil(body / 73) * 3;
}

/** MIME headers, boundaries and envelope headers of one message, and of each attachment part. */
const MESSAGE_OVERHEAD = 4096;
const PART_OVERHEAD = 400;

export function encodedMessageSize(input: Omit<MessageInput, 'serverId'>): number {
  let size = MESSAGE_OVERHEAD;
  // Encoded words take up to 2 octets per byte once base64 and their =?UTF-8?B?…?= framing are counted.
  size += Buffer.byteLength(input.subject) * 2 + Buffer.byteLength(input.fromName ?? '') * 2;
  for (const list of [input.to, input.cc ?? []]) for (const a of list) size += a.length + 4;
  size += (input.replyTo?.length ?? 0) + 12;
  for (const [name, value] of Object.entries(input.headers ?? {})) size += name.length + Buffer.byteLength(value) * 2;
  // A text part derived from html later is shorter than the html: counted as the html.
  const html = input.html ?? textToHtml(input.text ?? '');
  size += encodedTextSize(html) + encodedTextSize(input.text ?? html);
  for (const a of input.attachments ?? [])
    size += PART_OVERHEAD + Buffer.byteLength(a.filename) * 6 + base64Lines(a.content.length);
  return size;
}
