import { base64Stream } from './attachments.js';
import type { ComposedMessage } from './compose.js';
import { writeMime } from './mime-writer.js';

/**
 * The message handed to nodemailer, built from ours, always with an explicit envelope: a raw one as submitted (the
 * SMTP front); a composed one without attachments as the bytes mime-writer.ts wrote, raw as well; a composed one
 * with attachments as fields with only the allowed custom headers. Shared by the SMTP transport and the MIME
 * builder of the HTTP mail APIs (src/mail/transports/), so every transport sends the same bytes.
 */

const asAddress = (address: string) => ({ name: '', address });

/**
 * A message kept as submitted (the SMTP front): its MIME bytes go out unchanged, to an explicit envelope. Its
 * headers were checked and rewritten when it was accepted (src/submission/); nodemailer adds nothing to a raw one.
 */
export interface RawMessage {
  raw: Buffer;
  /** use8BitMime: MAIL FROM gets BODY=8BITMIME when the server offers it (octets above 127 in the message). */
  envelope: { from: string; to: string[]; use8BitMime?: boolean };
}

export function isRawMessage(message: ComposedMessage | RawMessage): message is RawMessage {
  return 'raw' in message;
}

/** The allowed custom headers: threading through nodemailer's own fields, the rest as headers. */
function customHeaderFields(headers: Record<string, string> | undefined) {
  if (!headers) return {};
  const rest: Record<string, string> = {};
  const out: { inReplyTo?: string; references?: string; headers?: Record<string, string> } = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (lower === 'in-reply-to') out.inReplyTo = value;
    else if (lower === 'references') out.references = value;
    else rest[name] = value;
  }
  if (Object.keys(rest).length > 0) out.headers = rest;
  return out;
}

/**
 * The nodemailer message: a raw one as submitted; a composed one written out here as bytes (mime-writer.ts), with
 * its Message-ID passed beside them, which is what nodemailer reports back as the message's id; or, for a message
 * with attachments, the fields MailComposer builds it from.
 */
export function toNodemailerMessage(message: ComposedMessage | RawMessage, messageId?: string) {
  if (isRawMessage(message)) {
    return {
      raw: message.raw,
      envelope: {
        from: message.envelope.from,
        to: message.envelope.to,
        ...(message.envelope.use8BitMime ? { use8BitMime: true } : {}),
      },
      disableFileAccess: true,
      disableUrlAccess: true,
    };
  }
  const written = writeMime(message, messageId);
  if (written) {
    return {
      raw: written.raw,
      envelope: { from: message.envelope.from, to: message.envelope.to },
      messageId: written.messageId,
      disableFileAccess: true,
      disableUrlAccess: true,
    };
  }
  return composedFields(message, messageId);
}

/** The fields MailComposer builds a composed message from: only the allowed custom headers. */
export function composedFields(message: ComposedMessage, messageId?: string) {
  return {
    ...customHeaderFields(message.headers),
    ...(message.attachments?.length
      ? {
          // Inline (cid) parts go into multipart/related with the html; the content is decoded while it is written.
          attachments: message.attachments.map((a) => ({
            filename: a.filename,
            content: base64Stream(a.content),
            ...(a.contentType ? { contentType: a.contentType } : {}),
            ...(a.cid ? { cid: a.cid } : {}),
          })),
        }
      : {}),
    from: { name: message.from.name, address: message.from.address },
    // Validated bare addresses, handed over as address objects: nodemailer would otherwise run its address
    // parser over each header several times per message (building the envelope, the headers, the address list).
    to: message.to.map(asAddress),
    cc: message.cc.map(asAddress),
    ...(message.replyTo ? { replyTo: asAddress(message.replyTo) } : {}),
    subject: message.subject,
    text: message.text,
    html: message.html,
    envelope: { from: message.envelope.from, to: message.envelope.to },
    ...(messageId ? { messageId } : {}),
    disableFileAccess: true,
    disableUrlAccess: true,
  };
}
