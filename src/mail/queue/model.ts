import { randomUUID } from 'node:crypto';
import type { AuditRecorder } from '../../admin/types.js';
import type { Clock } from '../../clock.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';
import type { ScheduleMove, Store } from '../../store/store.js';
import type { MessageInput, RecipientEntry } from '../compose.js';
import type { Diagnosis } from '../diagnose.js';
import type { MessageView } from '../message-view.js';
import type { QueueLimits } from '../queue-limits.js';
import type { SmtpServers } from '../servers.js';
import type { MailTransport } from '../transport.js';

/**
 * The queue's data: a message document per message, and four schedules used as status indexes.
 *
 *   messages/<id>                 the message, its status, attempts, last error and per-recipient results
 *   schedule "mail"               due time of every message that still has to be tried (claimDue leases it)
 *   schedule "mail-held"          held messages, by the time they were held
 *   schedule "mail-failed"        failed messages, by the time they failed (the error queue, newest first)
 *   schedule "mail-sent"          sent messages, by the time they are to be deleted (sentAt + retention)
 *   schedule "mail_parked:<srv>"  waiting messages set aside while their server is at its in-flight cap (parking.ts)
 *   idempotency/<apiKey>:<key>    compare-and-set created, points at the one message of that key
 *   mail_meta/indexes-v1          marks the status indexes as built for messages written before they existed
 *
 * Every message is in exactly one of the four schedules, the one of its status, and every write that changes
 * the status moves it between them in the same atomic step; a parked message is waiting, in its server's parked
 * schedule instead of "mail" (a crash while parking may leave it in both, which is harmless).
 */

export const MESSAGES = 'messages';
export const IDEMPOTENCY = 'idempotency';
export const MAIL_QUEUE = 'mail';
/** The status indexes (schedules used as sorted sets of ids by time). */
export const HELD_INDEX = 'mail-held';
export const FAILED_INDEX = 'mail-failed';
export const SENT_INDEX = 'mail-sent';
export const STATUS_INDEXES = [MAIL_QUEUE, HELD_INDEX, FAILED_INDEX, SENT_INDEX] as const;
export const MAIL_META = 'mail_meta';
export const INDEXES_MARKER = 'indexes-v1';
/** `scheduled` limit meaning "every entry". */
export const ALL = Number.MAX_SAFE_INTEGER;
/** A delivery still running after this long is shown as `sending`. */
export const SENDING_MARK_AFTER_MS = 250;
export const DEFAULT_KEEP_SENT_MS = 7 * 86_400_000;
export const DEFAULT_MAX_RETRY_DELAY_MS = 3_600_000;

export type MessageStatus = 'queued' | 'sending' | 'sent' | 'deferred' | 'held' | 'failed';
export type HeldReason = 'sending_disabled' | 'server_paused';

export interface MessageError {
  code: string;
  message: string;
  hint: string;
  responseCode?: number;
  at: number;
}

export interface RecipientResult extends RecipientEntry {
  status: 'pending' | 'accepted' | 'rejected';
  responseCode?: number;
  response?: string;
}

export interface MessageDoc {
  serverId: string;
  status: MessageStatus;
  heldReason: HeldReason | null;
  attempts: number;
  createdAt: number;
  updatedAt: number;
  nextAttemptAt: number | null;
  sentAt: number | null;
  lastError: MessageError | null;
  recipients: RecipientResult[];
  input: MessageInput;
  apiKeyId: string | null;
  smtpResponse: string | null;
  /** Bytes counted against MAILGATE_QUEUE_MAX_BYTES (absent on messages written before the limit existed). */
  size?: number;
  /** The door it came in by; absent on messages written before there were two (they came from the API). */
  source?: MessageSource;
  /**
   * A message kept as submitted (the SMTP front): the whole MIME message, base64, sent as it is to the recipients'
   * addresses. `input` then holds only what is shown (subject, recipients). Dropped once the message is sent.
   */
  mime?: string;
  /** The MIME message has octets above 127: it goes upstream with BODY=8BITMIME where the server offers it. */
  eightBit?: boolean;
}

export type MessageSource = 'api' | 'smtp';

export interface QueueOptions {
  concurrency: number;
  maxAttempts: number;
  retryBaseMs: number;
  /** How long a claim lasts before another worker may take the message. Default 20 s. */
  leaseMs?: number;
  /** How often running deliveries extend their leases. Default a third of the lease. */
  heartbeatMs?: number;
  /** Idle poll interval (a local enqueue wakes the worker at once). */
  pollMs?: number;
  /** Cap of the exponential backoff. */
  maxRetryDelayMs?: number;
  /** Sent messages are deleted this long after sending (GET then answers 404). Default 7 days. */
  keepSentMs?: number;
  /**
   * Deliveries of one server at a time in one instance while other servers have mail waiting (fairness between
   * mailboxes; the rest is parked). Default a quarter of concurrency.
   */
  perServerConcurrency?: number;
}

export interface MailQueueDeps {
  store: Store;
  servers: SmtpServers;
  transport: MailTransport;
  log: Logger;
  metrics?: Metrics;
  audit?: AuditRecorder;
  /** Due times, backoff, leases and retention are read from it; default the system clock. */
  clock?: Clock;
  fromFormat: string;
  options: QueueOptions;
  limits: QueueLimits;
}

export interface EnqueueOptions {
  apiKeyId?: string | null;
  idempotencyKey?: string | null;
}

export interface QueueOverview {
  queue: MessageView[];
  errors: MessageView[];
  counts: Record<MessageStatus, number>;
  oldestQueuedAt: string | null;
  oldestAgeMs: number | null;
}

export function newMessageId(now: number): string {
  // randomUUID draws from a cached pool of random bytes; randomBytes makes a system call for every id.
  return `msg_${now.toString(36)}${randomUUID().replaceAll('-', '').slice(0, 20)}`;
}

/** The schedule a message of this status belongs to. */
export function indexOf(status: MessageStatus): string {
  switch (status) {
    case 'held':
      return HELD_INDEX;
    case 'failed':
      return FAILED_INDEX;
    case 'sent':
      return SENT_INDEX;
    default:
      return MAIL_QUEUE;
  }
}

/**
 * The time a message is kept under in the index of its status: when it is due (waiting), when it was held or
 * failed, when it is to be deleted (sent).
 */
export function indexScore(m: MessageDoc, keepSentMs: number): number {
  switch (m.status) {
    case 'held':
    case 'failed':
      return m.updatedAt;
    case 'sent':
      return (m.sentAt ?? m.updatedAt) + keepSentMs;
    default:
      return m.nextAttemptAt ?? m.updatedAt;
  }
}

/** The index moves of a write from status `from` (null: a new message) to `value`. */
export function indexMoves(from: MessageStatus | null, value: MessageDoc, keepSentMs: number): ScheduleMove[] {
  const target = indexOf(value.status);
  const moves: ScheduleMove[] = [{ queue: target, dueAt: indexScore(value, keepSentMs) }];
  if (from !== null && indexOf(from) !== target) moves.push({ queue: indexOf(from), dueAt: null });
  return moves;
}

/** Deliveries of one server at a time in one instance while other servers have mail waiting. */
export function perServerInFlight(options: QueueOptions): number {
  return options.perServerConcurrency ?? Math.max(1, Math.ceil(options.concurrency / 4));
}

export function errorOf(d: Diagnosis, now: number, message?: string): MessageError {
  return {
    code: d.code,
    message: message ?? d.message,
    hint: d.hint,
    ...(d.responseCode !== undefined ? { responseCode: d.responseCode } : {}),
    at: now,
  };
}
