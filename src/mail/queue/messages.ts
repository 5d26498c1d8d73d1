import { AppError } from '../../errors.js';
import type { Doc, Store } from '../../store/store.js';
import { placeChanges, type QueueLimits } from '../queue-limits.js';
import type { ServerActivity } from './activity.js';
import { hourlyChanges } from './hourly.js';
import { indexMoves, indexOf, MAIL_QUEUE, MESSAGES, type MessageDoc, type MessageStatus } from './model.js';

/** The message documents: reads, and writes that keep the status indexes and the queue's counters in step. */
export interface Messages {
  /**
   * A compare-and-set write of a message. With `from` (its status before, null for a new message) it moves the
   * message between the status indexes in the same step; without, the indexes are left alone (a write that
   * keeps the message where it is and must not touch its lease).
   */
  put(id: string, value: MessageDoc, version: number, from?: MessageStatus | null): Promise<Doc<MessageDoc>>;
  find(id: string): Promise<Doc<MessageDoc> | null>;
  /** The message, or not_found. */
  get(id: string): Promise<Doc<MessageDoc>>;
  /** The messages of these ids that exist, each once; read in batches (one pipeline each on Redis). */
  read(ids: Iterable<string>): Promise<Doc<MessageDoc>[]>;
}

export function createMessages(deps: {
  store: Store;
  limits: QueueLimits;
  keepSentMs: number;
  activity: ServerActivity;
}): Messages {
  const { store, limits, keepSentMs, activity } = deps;
  const find = (id: string) => store.get<MessageDoc>(MESSAGES, id);
  return {
    async put(id, value, version, from) {
      const written = await store.put(MESSAGES, id, value, {
        ifVersion: version,
        ...(from !== undefined
          ? {
              schedule: indexMoves(from, value, keepSentMs),
              count: [...placeChanges(from, value, limits), ...hourlyChanges(value)],
            }
          : {}),
      });
      // Queued, deferred or released: its server has mail waiting (a store write at most every few seconds).
      if (from !== undefined && indexOf(value.status) === MAIL_QUEUE)
        await activity.touch(value.serverId, value.nextAttemptAt);
      return written;
    },
    find,
    async get(id) {
      const doc = await find(id);
      if (!doc) throw new AppError('not_found', { message: `No message ${id}.` });
      return doc;
    },
    async read(ids) {
      const unique = [...new Set(ids)];
      const out: Doc<MessageDoc>[] = [];
      for (let i = 0; i < unique.length; i += 500) {
        const docs = await Promise.all(unique.slice(i, i + 500).map(find));
        for (const doc of docs) if (doc) out.push(doc);
      }
      return out;
    },
  };
}
