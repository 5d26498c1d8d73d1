import { z } from 'zod';

/**
 * What a real app sends beside the text: attachments (base64, inline when they carry a `cid`) and a short list of
 * custom headers. Everything here is validated so that no value can start a header line of its own, and no header
 * that mailgate sets itself (From, To, Subject, Bcc, Message-ID, MIME structure…) can be supplied.
 *
 * Attachment content stays base64 from the request to the transport: it is decoded once, to check it, and the
 * decoded bytes are dropped at once; nodemailer decodes it again only while it writes the message out.
 */

export const MAX_ATTACHMENTS = 100;
export const MAX_HEADERS = 50;
/** RFC 5322: a line is at most 998 octets; a header value has to fit one with its name. */
export const MAX_HEADER_VALUE = 900;
export const MAX_FILENAME = 255;

/** Custom headers an app may set: its own X-* headers, unsubscribe links, and threading. */
export const ALLOWED_HEADERS = ['X-*', 'List-Unsubscribe', 'List-Unsubscribe-Post', 'In-Reply-To', 'References'];
const ALLOWED_HEADER = /^(x-[a-z0-9-]+|list-unsubscribe|list-unsubscribe-post|in-reply-to|references)$/i;
const HEADER_NAME = /^[!-9;-~]{1,76}$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;

/**
 * Strict base64: the standard alphabet, padded, no whitespace, no url-safe characters, no bits after the end.
 * Decoding is native and fast (a 19 MB file in about 20 ms); characters the decoder skips make the decoded length
 * come out short, which is how they are found without a regular expression over the whole string.
 */
export function isStrictBase64(value: string): boolean {
  const length = value.length;
  if (length % 4 !== 0) return false;
  if (length === 0) return true;
  const pad = value.endsWith('==') ? 2 : value.endsWith('=') ? 1 : 0;
  const firstPad = value.indexOf('=');
  if ((pad === 0 ? firstPad !== -1 : firstPad !== length - pad) || value.includes('-') || value.includes('_'))
    return false;
  if (Buffer.from(value, 'base64').length !== (length / 4) * 3 - pad) return false;
  // Canonical only: the unused bits of the last quantum are zero ("QR==" is not another spelling of "QQ==").
  const last = value.slice(-4);
  return Buffer.from(last, 'base64').toString('base64') === last;
}

/** Bytes a strict base64 string decodes to. */
export function decodedLength(base64: string): number {
  const pad = base64.endsWith('==') ? 2 : base64.endsWith('=') ? 1 : 0;
  return (base64.length / 4) * 3 - pad;
}

const mediaType = z
  .string()
  .max(127)
  .regex(/^[A-Za-z0-9!#$&^_.+-]+\/[A-Za-z0-9!#$&^_.+-]+$/, 'expected a media type such as application/pdf');

// RFC 5322 msg-id without the angle brackets: dot-atom, optionally @ and a host.
const contentId = z
  .string()
  .max(200)
  .regex(
    /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+(@[A-Za-z0-9.-]+)?$/,
    'expected a content id such as logo@example.com (referenced from html as cid:logo@example.com)',
  );

export const attachmentInput = z
  .strictObject({
    filename: z
      .string()
      .min(1, 'give a file name')
      .max(MAX_FILENAME)
      .refine((v) => !CONTROL.test(v) && !/[/\\]/.test(v), 'filename must not contain control characters or slashes'),
    contentType: mediaType.optional(),
    content: z
      .string()
      .refine(isStrictBase64, 'content must be standard base64 (A-Z a-z 0-9 + /, padded with =, no line breaks)')
      .meta({ contentEncoding: 'base64' }),
    cid: contentId.optional(),
  })
  .meta({ description: 'A file; with `cid` it is inline and referenced from html as `cid:<cid>`.' });

export type AttachmentInput = z.output<typeof attachmentInput>;

export const attachmentList = z
  .array(attachmentInput)
  .max(MAX_ATTACHMENTS, `at most ${MAX_ATTACHMENTS} attachments`)
  .superRefine((list, ctx) => {
    const seen = new Set<string>();
    list.forEach((a, i) => {
      if (a.cid === undefined) return;
      if (seen.has(a.cid.toLowerCase()))
        ctx.addIssue({ code: 'custom', path: [i, 'cid'], message: `cid ${a.cid} is used twice` });
      seen.add(a.cid.toLowerCase());
    });
  });

/** Custom headers: `{name: value}`, names from ALLOWED_HEADERS, values on one line. */
export const customHeaders = z
  .record(z.string(), z.string())
  .superRefine((headers, ctx) => {
    const names = Object.keys(headers);
    if (names.length > MAX_HEADERS) ctx.addIssue({ code: 'custom', message: `at most ${MAX_HEADERS} headers` });
    const seen = new Set<string>();
    for (const name of names) {
      const value = headers[name]!;
      if (!HEADER_NAME.test(name) || !ALLOWED_HEADER.test(name)) {
        ctx.addIssue({
          code: 'custom',
          path: [name],
          message: `header ${JSON.stringify(name)} is not allowed: only ${ALLOWED_HEADERS.join(', ')}`,
        });
        continue;
      }
      if (seen.has(name.toLowerCase()))
        ctx.addIssue({ code: 'custom', path: [name], message: `header ${name} is given twice` });
      seen.add(name.toLowerCase());
      if (CONTROL.test(value))
        ctx.addIssue({ code: 'custom', path: [name], message: 'must not contain CR, LF, NUL or control characters' });
      else if (value.length > MAX_HEADER_VALUE)
        ctx.addIssue({ code: 'custom', path: [name], message: `at most ${MAX_HEADER_VALUE} characters` });
    }
  })
  .meta({
    description: `Custom headers: ${ALLOWED_HEADERS.join(', ')}. Values on one line.`,
    propertyNames: { pattern: ALLOWED_HEADER.source },
  });

/**
 * An upper bound of the size of a text part as nodemailer writes it: quoted-printable when it is mostly Latin
 * (each other byte then takes 3 octets, plus soft line breaks), else base64 in 76-character lines.
 */
export function encodedTextSize(text: string): number {
  const bytes = Buffer.byteLength(text);
  const base64 = base64Lines(Math.ceil(bytes / 3) * 4);
  let escaped = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80 || c === 0x3d || (c < 0x20 && c !== 0x0a && c !== 0x0d)) escaped++;
  }
  // A non-ASCII character is at most 4 UTF-8 bytes, each =XX.
  const qp = bytes + escaped * 11 + Math.ceil(bytes / 73) * 3;
  return Math.max(base64, qp);
}

/** A base64 body of this many characters in lines of 76 with CRLF. */
export function base64Lines(chars: number): number {
  return chars + Math.ceil(chars / 76) * 2;
}

/** MIME headers, boundaries and envelope headers of one message, and of each attachment part. */
const MESSAGE_OVERHEAD = 4096;
const PART_OVERHEAD = 400;

/** An upper bound of the message as it will be sent (MIME, encoded): what MAILGATE_MAX_MESSAGE_BYTES limits. */
export function encodedMessageSize(input: {
  subject: string;
  text?: string | undefined;
  html?: string | undefined;
  to: string[];
  cc?: string[] | undefined;
  replyTo?: string | undefined;
  fromName?: string | undefined;
  headers?: Record<string, string> | undefined;
  attachments?: AttachmentInput[] | undefined;
}): number {
  let size = MESSAGE_OVERHEAD;
  // Encoded words take up to 4 octets per UTF-8 byte (base64 plus the =?UTF-8?B?…?= framing).
  size += Buffer.byteLength(input.subject) * 2 + Buffer.byteLength(input.fromName ?? '') * 2;
  for (const list of [input.to, input.cc ?? []]) for (const a of list) size += a.length + 4;
  size += (input.replyTo?.length ?? 0) + 12;
  for (const [name, value] of Object.entries(input.headers ?? {})) size += name.length + Buffer.byteLength(value) * 2;
  // The text part may be derived from html later: count the html's size for it when it is missing.
  size += encodedTextSize(input.html ?? input.text ?? '') + encodedTextSize(input.text ?? input.html ?? '');
  for (const a of input.attachments ?? [])
    size += PART_OVERHEAD + Buffer.byteLength(a.filename) * 6 + base64Lines(a.content.length);
  return size;
}
