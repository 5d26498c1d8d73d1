import type { Clock } from '../../clock.js';
import type { Store } from '../../store/store.js';
import { toView, type MessageView } from '../message-view.js';
import { readHourly, type HourlyOutcomes } from './hourly.js';
import type { Messages } from './messages.js';
import { ALL, indexOf, MAIL_QUEUE, STATUS_INDEXES, type MessageStatus } from './model.js';
import type { Parking } from './parking.js';

/**
 * Reading the queue page by page for the admin page: newest message first, filtered by status, server and
 * recipient, with a cursor (the id of the last message shown). Message ids start with their creation time, so
 * ordering by id is ordering by age. Only the index of the status asked for is read (ids only), and documents
 * are read in batches until a page is full; a filter that matches little stops after MAX_SCAN messages and
 * says so, with a cursor to continue, so one request never reads the whole history. Waiting messages include the
 * parked ones (of at most PARKED_SERVERS_READ servers, parking.ts).
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

export function createQueueBrowser(deps: {
  store: Store;
  messages: Messages;
  clock: Clock;
  parking: Parking;
}): QueueBrowser {
  const { store, messages, clock, parking } = deps;

  async function candidateIds(status: MessageStatus | undefined, cursor: string | undefined): Promise<string[]> {
    const indexes = status ? [indexOf(status)] : [...STATUS_INDEXES];
    const ids = new Set<string>();
    for (const index of indexes) for (const e of await store.scheduled(index, { limit: ALL })) ids.add(e.id);
    if (indexes.includes(MAIL_QUEUE)) for (const e of (await parking.read(ALL)).entries) ids.add(e.id);
    return [...ids].filter((id) => cursor === undefined || id < cursor).sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
  }

  return {
    async browse(filter) {
      const limit = Math.min(Math.max(filter.limit ?? PAGE_SIZE, 1), 500);
      const recipient = filter.recipient?.trim().toLowerCase() || undefined;
      const ids = await candidateIds(filter.status, filter.cursor);
      const items: MessageView[] = [];
      let scanned = 0;
      let more = false;
      for (let i = 0; i < ids.length && !more; i += BATCH) {
        const chunk = ids.slice(i, i + BATCH);
        const byId = new Map((await messages.read(chunk)).map((d) => [d.id, d.value]));
        for (const id of chunk) {
          scanned++;
          const m = byId.get(id);
          if (!m) continue;
          if (filter.status && m.status !== filter.status) continue;
          if (filter.serverId && m.serverId !== filter.serverId) continue;
          if (recipient && !m.recipients.some((r) => r.address.toLowerCase().includes(recipient))) continue;
          if (items.length === limit) {
            more = true;
            break;
          }
          items.push(toView(id, m));
        }
        if (!more && scanned >= MAX_SCAN && i + BATCH < ids.length) {
          // Stopped early: continue after the last message looked at, not the last one shown.
          return { items, next: chunk.at(-1) ?? null, partial: true };
        }
      }
      return { items, next: more ? (items.at(-1)?.id ?? null) : null, partial: false };
    },
    hourly: () => readHourly(store, clock.now()),
  };
}
