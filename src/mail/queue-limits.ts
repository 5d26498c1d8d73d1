import { AppError } from '../errors.js';
import type { Logger } from '../log.js';
import { CounterLimitError, VersionConflictError, type CounterChange, type Store } from '../store/store.js';
import type { MessageInput } from './compose.js';
import { jsonByteLength } from './json-size.js';
import { HourTally } from './queue/hourly.js';
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

/** The bytes a message is counted with: its stored input, as JSON (measured, not built). */
export function messageSize(input: MessageInput): number {
  if (!input.attachments?.length) return jsonByteLength(input);
  // Attachment content is strict base64 (validated), which JSON writes as it is: no need to scan megabytes of it.
  let content = 0;
  const attachments = input.attachments.map((a) => {
    content += a.content.length;
    return { ...a, content: '' };
  });
  return jsonByteLength({ ...input, attachments }) + content;
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
  if (!after)
    return [
      { counter: WAITING_MESSAGES, delta: -1 },
      { counter: WAITING_BYTES, delta: -size },
    ];
  const capped = from === null && limits !== undefined;
  return [
    { counter: WAITING_MESSAGES, delta: 1, ...(capped ? { max: limits.maxMessages } : {}) },
    { counter: WAITING_BYTES, delta: size, ...(capped ? { max: limits.maxBytes } : {}) },
  ];
}

/** The counter changes of deleting a message in this state. */
export function deleteChanges(value: MessageDoc): CounterChange[] {
  return holdsPlace(value.status)
    ? [
        { counter: WAITING_MESSAGES, delta: -1 },
        { counter: WAITING_BYTES, delta: -(value.size ?? 0) },
      ]
    : [];
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

/** Accumulates the places of messages, for counting them again. */
export class PlaceTally {
  messages = 0;
  bytes = 0;

  add(value: MessageDoc): void {
    if (!holdsPlace(value.status)) return;
    this.messages++;
    this.bytes += value.size ?? 0;
  }
}

/**
 * The embedded store keeps counters in memory only, so they are counted from the messages at start (the workers'
 * start does it while it reindexes). Requests are served meanwhile: whatever they changed from `before` (the
 * counters read before the messages were listed) is kept on top of the count.
 */
export async function saveFileStoreCount(store: Store, tally: PlaceTally, before: number[]): Promise<void> {
  const [messages = 0, bytes = 0] = await store.counters([WAITING_MESSAGES, WAITING_BYTES]);
  await store.setCounters({
    [WAITING_MESSAGES]: tally.messages + messages - before[0]!,
    [WAITING_BYTES]: tally.bytes + bytes - before[1]!,
  });
}

export function readPlaceCounters(store: Store): Promise<number[]> {
  return store.counters([WAITING_MESSAGES, WAITING_BYTES]);
}

export async function countPlacesOnFileStore(store: Store, messages: string): Promise<void> {
  const before = await readPlaceCounters(store);
  const tally = new PlaceTally();
  const hourly = new HourTally();
  for (const doc of await store.list<MessageDoc>(messages)) {
    tally.add(doc.value);
    hourly.add(doc.value);
  }
  await saveFileStoreCount(store, tally, before);
  await hourly.save(store);
}

/**
 * On Redis every write keeps the counters, messages written by versions before them (no `size`) excepted: those
 * waiting are counted once and added in the same atomic write as the marker that records it (so never twice), by
 * one instance under a lock. They count as 0 bytes, as their place is given back with 0 bytes. Waiting messages
 * are read from their indexes only.
 */
export async function buildCountersOnRedis(
  store: Store,
  log: Logger,
  waitingIndexes: readonly string[],
  messages: string,
): Promise<void> {
  if (await store.get(MAIL_META, COUNTERS_MARKER)) return;
  const lock = await store.acquireLock('mail-counters', 60_000);
  if (!lock) return;
  try {
    if (await store.get(MAIL_META, COUNTERS_MARKER)) return;
    const tally = new PlaceTally();
    const ids = new Set<string>();
    for (const index of waitingIndexes)
      for (const e of await store.scheduled(index, { limit: Number.MAX_SAFE_INTEGER })) ids.add(e.id);
    for (const id of ids) {
      const doc = await store.get<MessageDoc>(messages, id);
      if (doc && doc.value.size === undefined) tally.add(doc.value);
    }
    const count = [{ counter: WAITING_MESSAGES, delta: tally.messages }];
    try {
      await store.put(
        MAIL_META,
        COUNTERS_MARKER,
        { builtAt: Date.now(), messages: tally.messages },
        { ifVersion: 0, count },
      );
    } catch (err) {
      if (!(err instanceof VersionConflictError)) throw err;
      return; // counted by another instance
    }
    if (tally.messages)
      log.info({ messages: tally.messages }, 'queue counters: waiting messages of the earlier version counted');
  } finally {
    await lock.release();
  }
}
