import { Readable } from 'node:stream';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { z } from 'zod';

/**
 * What a real app sends beside the text: attachments (base64, inline when they carry a `cid`) and a short list of
 * custom headers. Everything here is validated so that no value can start a header line of its own, and no header
 * that mailgate sets itself (From, To, Subject, Bcc, Message-ID, MIME structure…) can be supplied.
 *
 * Attachment content stays base64 from the request to the transport: it is decoded once, to check it, and the
 * decoded bytes are dropped at once. On delivery it is decoded piece by piece while nodemailer writes the message
 * out (base64Stream), so neither the whole file nor its re-encoded form is ever held at once.
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

/** Base64 characters checked per piece: a multiple of 4, so every piece but the last decodes to exactly ¾ of it. */
const CHECK_CHARS = 1024 * 1024;

/**
 * Strict base64: the standard alphabet, padded, no whitespace, no url-safe characters, no bits after the end.
 * Decoding is native and fast (a 19 MB file in about 20 ms); characters the decoder skips make the decoded length
 * come out short, which is how they are found without a regular expression over the whole string. It is decoded a
 * megabyte at a time, so the decoded file is never held whole beside its base64.
 */
export function isStrictBase64(value: string): boolean {
  const length = value.length;
  if (length % 4 !== 0) return false;
  if (length === 0) return true;
  const pad = value.endsWith('==') ? 2 : value.endsWith('=') ? 1 : 0;
  const firstPad = value.indexOf('=');
  if ((pad === 0 ? firstPad !== -1 : firstPad !== length - pad) || value.includes('-') || value.includes('_'))
    return false;
  for (let i = 0; i < length; i += CHECK_CHARS) {
    const piece = value.slice(i, i + CHECK_CHARS);
    const padHere = i + piece.length === length ? pad : 0;
    if (Buffer.from(piece, 'base64').length !== (piece.length / 4) * 3 - padHere) return false;
  }
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

/** Base64 characters decoded per piece on delivery: 192 KiB of file, about a millisecond of work. */
const STREAM_CHARS = 256 * 1024;

/**
 * The bytes of a base64 attachment as a stream, decoded a piece at a time with a turn of the event loop between
 * pieces: a 25 MB file is then never decoded, nor re-encoded by the transport, in one piece that would hold up
 * every other request. Piece boundaries fall on multiples of 4 characters, so each piece decodes on its own.
 */
export function base64Stream(content: string): Readable {
  async function* pieces() {
    for (let i = 0; i < content.length; i += STREAM_CHARS) {
      if (i > 0) await nextTurn();
      yield Buffer.from(content.slice(i, i + STREAM_CHARS), 'base64');
    }
  }
  return Readable.from(pieces(), { objectMode: false });
}
