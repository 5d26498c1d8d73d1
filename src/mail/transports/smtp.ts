import MailComposer from 'nodemailer/lib/mail-composer';
import type { ComposedMessage } from '../compose.js';
import { writeMime } from '../mime-writer.js';
import { composedFields } from '../nodemailer-message.js';

/**
 * The SMTP transport is src/mail/transport.ts (nodemailer, pooled per server); this module is its other half for
 * the HTTP transports: the same MIME message the SMTP transport puts on the wire, written by the same code
 * (mime-writer.ts, or MailComposer from the same options for a message with attachments), so a message reads the
 * same whichever way it leaves. Only the mail transport modules import nodemailer.
 */

export { createMailTransport as createSmtpTransport } from '../transport.js';

/** The addresses of the envelope that are neither To nor Cc: the Bcc recipients. */
export function bccOf(message: ComposedMessage): string[] {
  const shown = new Set([...message.to, ...message.cc].map((a) => a.toLowerCase()));
  return message.envelope.to.filter((a) => !shown.has(a.toLowerCase()));
}

/**
 * The RFC 5322 message. `keepBcc`: Graph and the Gmail API take the recipients from the headers (and strip Bcc
 * before delivery), so for them the Bcc header must be in the message; SMTP passes them in the envelope only.
 */
export async function composeMime(
  message: ComposedMessage,
  messageId: string | undefined,
  options: { keepBcc: boolean },
): Promise<Buffer> {
  const bcc = bccOf(message);
  const written = writeMime(message, messageId, { bcc: options.keepBcc ? bcc : [] });
  if (written) return written.raw;
  const mail = new MailComposer({
    ...composedFields(message, messageId),
    ...(options.keepBcc && bcc.length ? { bcc } : {}),
  });
  const node = mail.compile();
  node.keepBcc = options.keepBcc;
  return node.build();
}
