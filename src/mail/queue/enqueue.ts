import { createHash } from 'node:crypto';
import type { Clock } from '../../clock.js';
import { AppError } from '../../errors.js';
import { VersionConflictError, type Store } from '../../store/store.js';
import { recipientsOf, withTextPart, type MessageInput } from '../compose.js';
import { messageSize, queueFullError, type QueueLimits } from '../queue-limits.js';
import type { SmtpServers } from '../servers.js';
import type { Messages } from './messages.js';
import {
  IDEMPOTENCY,
  newMessageId,
  type EnqueueOptions,
  type HeldReason,
  type MessageDoc,
  type MessageStatus,
} from './model.js';

export type Enqueue = (
  input: MessageInput,
  options?: EnqueueOptions,
) => Promise<{ id: string; status: MessageStatus; created: boolean }>;

function requestHash(input: MessageInput): string {
  return createHash('sha256').update(JSON.stringify(input)).digest('base64url');
}

/**
 * The state a message starts in, whatever path it came by (the API or the SMTP front): queued, or held when
 * outgoing mail is disabled or its server is paused.
 */
export async function freshState(
  servers: Pick<SmtpServers, 'sendingEnabled' | 'pauseOf'>,
  serverId: string,
  now: number,
): Promise<
  Pick<
    MessageDoc,
    'status' | 'heldReason' | 'attempts' | 'createdAt' | 'updatedAt' | 'nextAttemptAt' | 'sentAt' | 'lastError'
  >
> {
  const enabled = await servers.sendingEnabled();
  const paused = enabled ? await servers.pauseOf(serverId) : null;
  const heldReason: HeldReason | null = !enabled ? 'sending_disabled' : paused ? 'server_paused' : null;
  return {
    status: heldReason ? 'held' : 'queued',
    heldReason,
    attempts: 0,
    createdAt: now,
    updatedAt: now,
    nextAttemptAt: heldReason ? null : now,
    sentAt: null,
    lastError: null,
  };
}

/**
 * Accepting a message: its server checked, held at once when outgoing mail is off or the server paused, and with
 * an Idempotency-Key the same message for every repeat of the request.
 */
export function createEnqueue(deps: {
  store: Store;
  servers: SmtpServers;
  messages: Messages;
  clock: Clock;
  limits: QueueLimits;
  wake: () => void;
}): Enqueue {
  const { store, servers, messages, clock } = deps;

  async function createMessage(
    id: string,
    input: MessageInput,
    serverId: string,
    apiKeyId: string | null,
  ): Promise<{ status: MessageStatus; created: boolean }> {
    const now = clock.now();
    const doc: MessageDoc = {
      serverId,
      ...(await freshState(servers, serverId, now)),
      recipients: recipientsOf(input).map((r) => ({ ...r, status: 'pending' })),
      input,
      apiKeyId,
      smtpResponse: null,
      size: messageSize(input),
    };
    try {
      // The message and its place in the queue (or the held index) are written together: there is no moment
      // (nor a crash) where a queued message is not scheduled.
      await messages.put(id, doc, 0, null);
    } catch (err) {
      if (err instanceof VersionConflictError) {
        const existing = await messages.find(id);
        return { status: existing?.value.status ?? 'queued', created: false };
      }
      throw queueFullError(err, deps.limits);
    }
    if (!doc.heldReason) deps.wake();
    return { status: doc.status, created: true };
  }

  return async (input, options = {}) => {
    const serverId = input.serverId ?? (await servers.defaultServerId());
    if (!serverId)
      throw new AppError('bad_request', {
        message: 'No SMTP server is configured: add one at /admin/smtp-servers first.',
      });
    if (!(await servers.resolve(serverId))) {
      throw new AppError('validation_failed', {
        message: `serverId: no SMTP server ${serverId}`,
        details: [{ field: 'serverId', message: 'no such SMTP server' }],
      });
    }
    const { serverId: _omit, ...content } = await withTextPart(input);
    const apiKeyId = options.apiKeyId ?? null;
    let id = newMessageId(clock.now());
    if (options.idempotencyKey) {
      const key = `${apiKeyId ?? 'local'}:${options.idempotencyKey}`;
      const hash = requestHash(input);
      try {
        await store.put(IDEMPOTENCY, key, { messageId: id, hash, at: clock.now() }, { ifVersion: 0 });
      } catch (err) {
        if (!(err instanceof VersionConflictError)) throw err;
        const existing = await store.get<{ messageId: string; hash: string }>(IDEMPOTENCY, key);
        if (!existing)
          throw new AppError('conflict', { message: 'Idempotency-Key is being used by a concurrent request; retry.' });
        if (existing.value.hash !== hash)
          throw new AppError('conflict', { message: 'This Idempotency-Key was used with a different request.' });
        id = existing.value.messageId;
        const message = await messages.find(id);
        // A crash between the key and the message leaves the key alone: create the message now, same id.
        if (message) return { id, status: message.value.status, created: false };
      }
    }
    const r = await createMessage(id, content, serverId, apiKeyId);
    return { id, ...r };
  };
}
