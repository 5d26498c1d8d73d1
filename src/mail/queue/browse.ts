import type { Clock } from '../../clock.js';
import type { Store } from '../../store/store.js';
import { toView, type MessageView } from '../message-view.js';
import { readHourly, type HourlyOutcomes } from './hourly.js';
import type { Messages } from './messages.js';
import { indexOf, MAIL_QUEUE, MESSAGES, type MessageDoc, type MessageStatus } from './model.js';
import type { Parking } from './parking.js';

/**
 * Reading the queue page by page for the admin page: newest message first, filtered by status, server and
 * recipient, with a cursor (the id of the last message shown). Message ids start with their creation time, so
 * ordering by id is ordering by age, and the newest page is the top of the collection's id order: a page without
 * a filter reads the page and nothing else. A status filter reads the ids of its status index when that holds at
 * most MAX_SCAN messages (so a rare status is found exactly); otherwise, and for the server and recipient filters,
 * documents are read newest first in batches until a page is full. A filter that matches little stops after
 * MAX_SCAN messages and says so, with a cursor to continue, so one request never reads the whole history. Waiting
 * messages include the parked ones (of at most PARKED_SERVERS_READ servers, parking.ts).
 */

export const PAGE_SIZE = 50;
export const MAX_SCAN = 5000;
const BATCH = 100;

export interface BrowseFilter {
  status?: MessageStatus | undefined;
  serverId?: string | undefined;
  /** Part of a recipient address, any case. */
  recipient?: string | undefined;
  /** The id of the last message of the previous page. */
  cursor?: string | undefined;
  limit?: number | undefined;
}

export interface BrowsePage {
  items: MessageView[];
  /** Cursor of the next (older) page; null on the last one. */
  next: string | null;
  /** True when the scan stopped at MAX_SCAN before the page was full. */
  partial: boolean;
}

export interface QueueBrowser {
  browse(filter: BrowseFilter): Promise<BrowsePage>;
  /** Sent, deferred and failed per hour over the last 7 days, from the hourly counters. */
  hourly(): Promise<HourlyOutcomes>;
}

/**
 * Messages newest first, a batch at a time; an empty batch means there are no more. A null value is an index entry
 * whose message was deleted meanwhile: looked at, never shown.
 */
type Batches = (size: number) => Promise<Array<{ id: string; value: MessageDoc | null }>>;

const newestFirst = (a: string, b: string) => (a < b ? 1 : a > b ? -1 : 0);

export function createQueueBrowser(deps: {
  store: Store;
  messages: Messages;
  clock: Clock;
  parking: Parking;
}): QueueBrowser {
  const { store, messages, clock, parking } = deps;

  /** The collection, newest first, below the cursor. */
  function collectionBatches(cursor: string | undefined): Batches {
    let before = cursor;
    let done = false;
    return async (size) => {
      if (done) return [];
      const docs = await store.list<MessageDoc>(MESSAGES, {
        descending: true,
        limit: size,
        ...(before !== undefined ? { before } : {}),
      });
      done = docs.length < size;
      before = docs.at(-1)?.id ?? before;
      return docs;
    };
  }

  /** The ids of a small status index, newest first, below the cursor; null when the index is too large to read. */
  async function indexBatches(status: MessageStatus, cursor: string | undefined): Promise<Batches | null> {
    const index = indexOf(status);
    const indexed = (await store.scheduleStats(index)).count;
    if (indexed > MAX_SCAN) return null;
    const found = new Set((await store.scheduled(index, { limit: MAX_SCAN })).map((e) => e.id));
    if (index === MAIL_QUEUE) {
      const parked = await parking.read(MAX_SCAN);
      if (indexed + parked.count > MAX_SCAN) return null;
      for (const e of parked.entries) found.add(e.id);
    }
    const ids = [...found].filter((id) => cursor === undefined || id < cursor).sort(newestFirst);
    let at = 0;
    return async (size) => {
      const chunk = ids.slice(at, at + size);
      at += size;
      const byId = new Map((await messages.read(chunk)).map((d) => [d.id, d.value]));
      return chunk.map((id) => ({ id, value: byId.get(id) ?? null }));
    };
  }

  return {
    async browse(filter) {
      const limit = Math.min(Math.max(filter.limit ?? PAGE_SIZE, 1), 500);
      const recipient = filter.recipient?.trim().toLowerCase() || undefined;
      const filtered = Boolean(filter.status || filter.serverId || recipient);
      const matches = (m: MessageDoc | null): m is MessageDoc =>
        m !== null &&
        (!filter.status || m.status === filter.status) &&
        (!filter.serverId || m.serverId === filter.serverId) &&
        (!recipient || m.recipients.some((r) => r.address.toLowerCase().includes(recipient)));
      const batches =
        (filter.status ? await indexBatches(filter.status, filter.cursor) : null) ?? collectionBatches(filter.cursor);
      // Unfiltered, one more than the page tells whether there is a next page.
      const size = filtered ? BATCH : limit + 1;
      const items: MessageView[] = [];
      let scanned = 0;
      for (;;) {
        const batch = await batches(size);
        if (batch.length === 0) return { items, next: null, partial: false };
        for (const doc of batch) {
          scanned++;
          if (!matches(doc.value)) continue;
          if (items.length === limit) return { items, next: items.at(-1)!.id, partial: false };
          items.push(toView(doc.id, doc.value));
        }
        // Stopped early: continue after the last message looked at, not the last one shown.
        if (scanned >= MAX_SCAN && batch.length === size) return { items, next: batch.at(-1)!.id, partial: true };
      }
    },
    hourly: () => readHourly(store, clock.now()),
  };
}
