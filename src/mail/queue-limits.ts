import { AppError } from '../errors.js';
import type { Logger } from '../log.js';
import { CounterLimitError, type CounterChange, type Store } from '../store/store.js';
import type { MessageInput } from './compose.js';
import type { MessageDoc, MessageStatus } from './queue.js';

/**
 * The bounds on mail not yet delivered (MAILGATE_QUEUE_MAX_MESSAGES, MAILGATE_QUEUE_MAX_BYTES), across every
 * instance. Two store counters hold the number and the bytes of messages that are queued, sending, deferred or
 * held. Every status write of a message carries its counter changes (the store applies them in the same atomic
 * step as the write and its index moves), so the counters are exact without ever scanning the queue: a new
 * message reserves its place with a limit (refused whole when it would pass one, so parallel requests cannot
 * overshoot), and the write that makes it sent or failed, or deletes it, gives the place back. Messages already
 * accepted are never refused: a resend of a failed message counts again, but without a limit.
 */

export const WAITING_MESSAGES = 'mail-waiting-messages';
export const WAITING_BYTES = 'mail-waiting-bytes';
/** Marks the counters as built from the messages written before they existed (Redis). */
const COUNTERS_MARKER = 'counters-v1';
const MAIL_META = 'mail_meta';
/** What a refused client is told to wait: deliveries free places continuously, so a short wait is right. */
export const QUEUE_FULL_RETRY_AFTER_SEC = 30;

export interface QueueLimits {
  maxMessages: number;
  maxBytes: number;
}

/** Statuses that hold a place in the queue (everything but sent and failed). */
export function holdsPlace(status: MessageStatus): boolean {
  return status !== 'sent' && status !== 'failed';
}

/** The bytes a message is counted with: its stored input, as JSON. */
export function messageSize(input: MessageInput): number {
  return Buffer.byteLength(JSON.stringify(input));
}

/**
 * The counter changes of a write from status `from` (null: a new message) to `value`: a place is taken when the
 * message starts to hold one (with the limits only for a new message) and given back when it stops.
 */
export function placeChanges(from: MessageStatus | null, value: MessageDoc, limits?: QueueLimits): CounterChange[] {
  const before = from !== null && holdsPlace(from);
  const after = holdsPlace(value.status);
  if (before === after) return [];
  const size = value.size ?? 0;
  if (!after) return [{ counter: WAITING_MESSAGES, delta: -1 }, { counter: WAITING_BYTES, delta: -size }];
  const capped = from === null && limits !== undefined;
  return [
    { counter: WAITING_MESSAGES, delta: 1, ...(capped ? { max: limits.maxMessages } : {}) },
    { counter: WAITING_BYTES, delta: size, ...(capped ? { max: limits.maxBytes } : {}) },
  ];
}

/** The counter changes of deleting a message in this state. */
export function deleteChanges(value: MessageDoc): CounterChange[] {
  return holdsPlace(value.status) ? [{ counter: WAITING_MESSAGES, delta: -1 }, { counter: WAITING_BYTES, delta: -(value.size ?? 0) }] : [];
}

/** A refused reservation as the API error; anything else passes through. */
export function queueFullError(err: unknown, limits: QueueLimits): unknown {
  if (!(err instanceof CounterLimitError)) return err;
  const what = err.counter === WAITING_BYTES ? `${limits.maxBytes} bytes` : `${limits.maxMessages} messages`;
  return new AppError('queue_full', {
    message: `The mail queue is full (at most ${what} not yet delivered); try again later.`,
    headers: { 'Retry-After': String(QUEUE_FULL_RETRY_AFTER_SEC) },
  });
}

/** Accumulates the counters from every message, for a rebuild. */
export class PlaceTally {
  messages = 0;
  bytes = 0;

  add(value: MessageDoc): void {
    if (!holdsPlace(value.status)) return;
    this.messages++;
    this.bytes += value.size ?? 0;
  }

  async save(store: Store): Promise<void> {
    await store.setCounters({ [WAITING_MESSAGES]: this.messages, [WAITING_BYTES]: this.bytes });
  }
}

/** The embedded store keeps counters in memory only: counted from every message at start (the workers' start does it while it reindexes). */
export async function countPlacesOnFileStore(store: Store, messages: string): Promise<void> {
  const tally = new PlaceTally();
  for (const doc of await store.list<MessageDoc>(messages)) tally.add(doc.value);
  await tally.save(store);
}

/**
 * On Redis the counters are kept by every write; messages written before they existed are counted once, by one
 * instance under a lock (a marker records that it is done). Waiting messages are read from their indexes only.
 */
export async function buildCountersOnRedis(store: Store, log: Logger, waitingIndexes: readonly string[], messages: string): Promise<void> {
  if (await store.get(MAIL_META, COUNTERS_MARKER)) return;
  const lock = await store.acquireLock('mail-counters', 60_000);
  if (!lock) return;
  try {
    if (await store.get(MAIL_META, COUNTERS_MARKER)) return;
    const tally = new PlaceTally();
    const ids = new Set<string>();
    for (const index of waitingIndexes) for (const e of await store.scheduled(index, { limit: Number.MAX_SAFE_INTEGER })) ids.add(e.id);
    for (const id of ids) {
      const doc = await store.get<MessageDoc>(messages, id);
      if (doc) tally.add(doc.value);
    }
    await tally.save(store);
    await store.put(MAIL_META, COUNTERS_MARKER, { builtAt: Date.now(), messages: tally.messages, bytes: tally.bytes });
    if (tally.messages) log.info({ messages: tally.messages, bytes: tally.bytes }, 'queue counters built from the waiting messages');
  } finally {
    await lock.release();
  }
}
