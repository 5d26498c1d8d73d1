import type { SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import type { RecipientEntry } from '../mail/compose.js';
import type { EnqueueMime } from '../mail/queue.js';
import type { ResolvedServer } from '../mail/servers.js';
import { MessageFormatError, parseHeaderBlock, rewriteHeaders, type RewriteServer } from './headers.js';
import type { SubmissionUser } from './listener.js';
import { readMessage } from './reader.js';
import { replies } from './replies.js';

/**
 * One submitted message, from DATA to the store: read and checked in one pass (reader.ts), its header block
 * rewritten for the server it goes through (headers.ts), the key's allowedFrom checked against the header From,
 * then assembled once and stored. Resolves with the 250 text only after the durable write; rejects with an
 * SmtpReply, and then nothing was stored.
 */

export interface AcceptContext {
  session: SMTPServerSession;
  user: SubmissionUser;
  maxMessageBytes: number;
  /** The key's server or the default one; null when there is none. */
  server: (ResolvedServer & Pick<RewriteServer, 'sendAs'>) | null;
  fromAllowed: (address: string) => boolean;
  enqueue: EnqueueMime;
}

const CRLF = Buffer.from('\r\n');

export async function acceptMessage(stream: SMTPServerDataStream, ctx: AcceptContext): Promise<string> {
  const read = await readMessage(stream);
  if (!read.ok) {
    if (read.reason === 'too_big') throw replies.tooBig(ctx.maxMessageBytes);
    if (read.reason === 'aborted') throw replies.temporary();
    throw replies.badMessage(read.message);
  }
  if (!ctx.server) throw replies.noServer();
  let rewritten;
  try {
    rewritten = rewriteHeaders(parseHeaderBlock(read.header), ctx.server, new Date());
  } catch (err) {
    if (err instanceof MessageFormatError) throw replies.badMessage(err.message);
    throw err;
  }
  if (!ctx.fromAllowed(rewritten.from)) throw replies.senderNotAllowed(rewritten.from);

  const header = Buffer.from(rewritten.header, 'latin1');
  const parts = read.bodyBytes > 0 ? [header, CRLF, ...read.body] : [header];
  const mime = Buffer.concat(parts);
  read.body.length = 0;
  if (mime.length > ctx.maxMessageBytes) throw replies.tooBig(ctx.maxMessageBytes);

  const recipients: RecipientEntry[] = ctx.session.envelope.rcptTo.map(({ address }) => {
    const lower = address.toLowerCase();
    return { address, kind: rewritten.to.has(lower) ? 'to' : rewritten.cc.has(lower) ? 'cc' : 'bcc' };
  });
  const stored = await ctx.enqueue({
    serverId: ctx.server.id,
    recipients,
    subject: rewritten.subject,
    mime,
    apiKeyId: ctx.user.keyId,
  });
  return `2.0.0 Ok: queued as ${stored.id}`;
}
