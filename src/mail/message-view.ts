import type { HeldReason, MessageDoc, MessageError, MessageSource, MessageStatus, RecipientResult } from './queue.js';

/** What GET /api/v1/messages/:id shows: never the body. */
export interface MessageView {
  id: string;
  status: MessageStatus;
  heldReason: HeldReason | null;
  serverId: string;
  /** The API key that queued it (null for in-process sends). */
  apiKeyId: string | null;
  subject: string;
  /** `api` or `smtp` (the submission front). */
  source: MessageSource;
  /** Bytes of the message as stored (null for messages written before sizes were kept). */
  size: number | null;
  attempts: number;
  createdAt: string;
  updatedAt: string;
  nextAttemptAt: string | null;
  sentAt: string | null;
  lastError: (Omit<MessageError, 'at'> & { at: string }) | null;
  recipients: RecipientResult[];
}

export function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

export function toView(id: string, m: MessageDoc): MessageView {
  return {
    id,
    status: m.status,
    heldReason: m.heldReason,
    serverId: m.serverId,
    apiKeyId: m.apiKeyId,
    subject: m.input.subject,
    source: m.source ?? 'api',
    size: m.size ?? null,
    attempts: m.attempts,
    createdAt: new Date(m.createdAt).toISOString(),
    updatedAt: new Date(m.updatedAt).toISOString(),
    nextAttemptAt: iso(m.nextAttemptAt),
    sentAt: iso(m.sentAt),
    lastError: m.lastError ? { ...m.lastError, at: new Date(m.lastError.at).toISOString() } : null,
    recipients: m.recipients,
  };
}
