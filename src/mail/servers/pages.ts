import type { Doc, Documents } from '../../store/store.js';
import { PAUSES, SERVERS, type SmtpServerDoc, type SmtpServerView } from './model.js';
import type { SmtpServers } from './service-types.js';

/**
 * One page of the SMTP servers, in id order, for the JSON list and the servers page: a page reads the page, not
 * every server. A search reads at most SEARCH_SCAN servers per request (by id order, from the cursor) and answers
 * with a cursor to go on from, so its cost stays bounded at 100,000 servers. Servers defined in the servers file
 * lead the first page.
 */

export const SEARCH_SCAN = 5000;

export interface ServerPage {
  items: SmtpServerView[];
  /** Absent on the last page. */
  next?: string;
}

type Searchable = Pick<SmtpServerDoc, 'name' | 'description' | 'host' | 'fromAddress' | 'username'>;

function matcher(search: string | undefined): (id: string, s: Searchable) => boolean {
  const q = search?.trim().toLowerCase();
  if (!q) return () => true;
  return (id, s) =>
    [id, s.name, s.description ?? '', s.host, s.fromAddress, s.username ?? ''].some((f) => f.toLowerCase().includes(q));
}

export async function pageServers(
  deps: { store: Pick<Documents, 'list'>; servers: Pick<SmtpServers, 'get' | 'viewOf' | 'fileServerIds'> },
  options: { limit: number; cursor?: string | undefined; search?: string | undefined },
): Promise<ServerPage> {
  const matches = matcher(options.search);
  const searching = Boolean(options.search?.trim());
  const items: SmtpServerView[] = [];
  if (!options.cursor)
    for (const id of deps.servers.fileServerIds()) {
      const view = await deps.servers.get(id);
      if (matches(id, view)) items.push(view);
    }
  let after = options.cursor;
  let scanned = 0;
  const found: Doc<SmtpServerDoc>[] = [];
  for (;;) {
    const room = options.limit - items.length - found.length;
    // One more than needed tells whether a next page exists; a search reads larger batches.
    const want = searching ? Math.min(500, SEARCH_SCAN - scanned) : room + 1;
    if (room <= 0 || want <= 0) break;
    const docs = await deps.store.list<SmtpServerDoc>(SERVERS, { limit: want, ...(after ? { after } : {}) });
    scanned += docs.length;
    let stoppedEarly = false;
    for (const d of docs) {
      if (items.length + found.length >= options.limit) {
        stoppedEarly = true;
        break;
      }
      after = d.id;
      if (matches(d.id, d.value)) found.push(d);
    }
    if (!stoppedEarly && docs.length < want) {
      after = undefined; // the end of the collection
      break;
    }
    if (stoppedEarly) break;
  }
  // Views of the documents just listed: a page reads each server once.
  items.push(...(await Promise.all(found.map((d) => deps.servers.viewOf(d)))));
  return after !== undefined ? { items, next: after } : { items };
}

/** Up to `limit` paused servers, from the pauses (few) rather than every server. */
export async function pausedServers(
  deps: { store: Pick<Documents, 'list'>; servers: Pick<SmtpServers, 'get'> },
  limit: number,
): Promise<SmtpServerView[]> {
  const pauses = await deps.store.list(PAUSES, { limit });
  const views = await Promise.all(pauses.map((p) => deps.servers.get(p.id).catch(() => null)));
  return views.filter((v): v is SmtpServerView => v !== null && v.paused !== null);
}

/** The page functions of the servers service (kept here so the service stays small). */
export function serverPages(
  store: Pick<Documents, 'list'>,
  service: () => Pick<SmtpServers, 'get' | 'viewOf' | 'fileServerIds'>,
  fileServers: { keys(): Iterable<string> },
): Pick<SmtpServers, 'fileServerIds' | 'paused' | 'page'> {
  return {
    fileServerIds: () => [...fileServers.keys()],
    paused: (limit) => pausedServers({ store, servers: service() }, limit),
    page: (options) => pageServers({ store, servers: service() }, options),
  };
}
