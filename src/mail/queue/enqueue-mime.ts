import { isAscii } from 'node:buffer';
import type { Clock } from '../../clock.js';
import { AppError } from '../../errors.js';
import type { RecipientEntry } from '../compose.js';
import { queueFullError, type QueueLimits } from '../queue-limits.js';
import type { SmtpServers } from '../servers.js';
import { freshState } from './enqueue.js';
import type { Messages } from './messages.js';
import { newMessageId, type MessageDoc, type MessageStatus } from './model.js';

/** A message kept as submitted (the SMTP front), its headers already rewritten for the server it goes through. */
export interface MimeSubmission {
  serverId: string;
  /** The envelope recipients (RCPT TO), in order, each once; `kind` as the headers show them (bcc when not). */
  recipients: RecipientEntry[];
  /** The decoded Subject, for the queue page and GET /api/v1/messages/:id. */
  subject: string;
  mime: Buffer;
  apiKeyId: string | null;
}

/** Whether a message needs 8BITMIME upstream (native check, no copy). */
function eightBit(mime: Buffer): boolean {
  return !isAscii(mime);
}

export type EnqueueMime = (
  submission: MimeSubmission,
  id?: string,
) => Promise<{ id: string; status: MessageStatus; size: number }>;

/**
 * Accepting a message kept as MIME: one durable write (the message, its place in the queue and its share of the
 * queue's limits together), as for the JSON API. Resolves only once the store has it (MAILGATE_FSYNC applies), so
 * the SMTP front answers 250 after this and never before.
 */
export function createEnqueueMime(deps: {
  servers: SmtpServers;
  messages: Messages;
  clock: Clock;
  limits: QueueLimits;
  wake: () => void;
}): EnqueueMime {
  const { servers, messages, clock } = deps;
  return async (submission, givenId) => {
    if (!(await servers.resolve(submission.serverId)))
      throw new AppError('validation_failed', { message: `serverId: no SMTP server ${submission.serverId}` });
    const now = clock.now();
    const id = givenId ?? newMessageId(now);
    const size = submission.mime.length;
    const doc: MessageDoc = {
      serverId: submission.serverId,
      ...(await freshState(servers, submission.serverId, now)),
      recipients: submission.recipients.map((r) => ({ ...r, status: 'pending' })),
      input: {
        to: submission.recipients.filter((r) => r.kind === 'to').map((r) => r.address),
        subject: submission.subject,
      },
      apiKeyId: submission.apiKeyId,
      smtpResponse: null,
      size,
      source: 'smtp',
      mime: submission.mime.toString('base64'),
      ...(eightBit(submission.mime) ? { eightBit: true } : {}),
    };
    try {
      await messages.put(id, doc, 0, null);
    } catch (err) {
      throw queueFullError(err, deps.limits);
    }
    if (!doc.heldReason) deps.wake();
    return { id, status: doc.status, size };
  };
}
