import type { Logs } from '../store/store.js';
import type { Actor, AuditEventInput } from './types.js';

/**
 * Reading the audit log with filters, for the audit page, the API and the exports: by actor (part of an email,
 * key name or id, any case), by action (a full action or its prefix, `smtp_server.` or `smtp_server`) and by time
 * (`from` inclusive, `to` exclusive). The log is read newest first in pages of AUDIT_PAGE_MAX and stops at the
 * first entry older than `from`; one call reads at most MAX_SCAN entries and then hands back a cursor to go on,
 * so a rare filter never reads the whole history in one request.
 */

export const AUDIT_LOG = 'audit';

export interface AuditEntry {
  at: string;
  actor: Actor;
  action: string;
  target?: string;
  outcome: 'success' | 'failure';
  ip?: string;
  detail?: AuditEventInput['detail'];
}

export interface AuditRecord extends AuditEntry {
  id: string;
}

export const AUDIT_PAGE_MAX = 200;

export const MAX_SCAN = 5000;

export interface AuditFilter {
  actor?: string | undefined;
  action?: string | undefined;
  from?: Date | undefined;
  to?: Date | undefined;
}

export interface AuditQueryPage {
  entries: AuditRecord[];
  /** Pass as `cursor` (or `before`) for the next, older page; null on the last one. */
  next: string | null;
  /** True when the scan stopped at MAX_SCAN before the page was full. */
  partial: boolean;
}

/** The words an actor is found by. */
export function actorText(actor: Actor): string {
  switch (actor.type) {
    case 'user':
      return `${actor.email} ${actor.id} user`;
    case 'api_key':
      return `${actor.name} ${actor.id} api_key`;
    default:
      return `${actor.type}:${actor.id}`;
  }
}

export function matchesFilter(e: AuditEntry, f: AuditFilter): boolean {
  if (f.actor && !actorText(e.actor).toLowerCase().includes(f.actor.toLowerCase())) return false;
  if (f.action) {
    const a = f.action.toLowerCase();
    if (e.action !== a && !e.action.startsWith(a.endsWith('.') ? a : `${a}.`)) return false;
  }
  if (f.from && e.at < f.from.toISOString()) return false;
  if (f.to && e.at >= f.to.toISOString()) return false;
  return true;
}

export async function queryAudit(
  store: Logs,
  filter: AuditFilter,
  options: { cursor?: string | undefined; limit?: number | undefined } = {},
): Promise<AuditQueryPage> {
  const limit = Math.min(Math.max(options.limit ?? 50, 1), 500);
  const fromIso = filter.from?.toISOString();
  const entries: AuditRecord[] = [];
  let before = options.cursor;
  let scanned = 0;
  for (;;) {
    const rows = await store.readLog<AuditEntry>(AUDIT_LOG, { before, limit: AUDIT_PAGE_MAX });
    for (const row of rows) {
      scanned++;
      if (fromIso && row.entry.at < fromIso) return { entries, next: null, partial: false };
      if (!matchesFilter(row.entry, filter)) continue;
      if (entries.length === limit) return { entries, next: entries.at(-1)!.id, partial: false };
      entries.push({ id: row.id, ...row.entry });
    }
    if (rows.length < AUDIT_PAGE_MAX) return { entries, next: null, partial: false };
    before = rows.at(-1)!.id;
    if (scanned >= MAX_SCAN) return { entries, next: before, partial: true };
  }
}

/** Every matching entry, oldest first (JSON lines for a SIEM). Reads back only as far as `from`. */
export async function* exportAudit(store: Logs, filter: AuditFilter): AsyncGenerator<AuditRecord> {
  const fromIso = filter.from?.toISOString();
  const pages: AuditRecord[][] = [];
  let before: string | undefined;
  for (;;) {
    const rows = await store.readLog<AuditEntry>(AUDIT_LOG, { before, limit: AUDIT_PAGE_MAX });
    const kept: AuditRecord[] = [];
    let done = rows.length < AUDIT_PAGE_MAX;
    for (const row of rows) {
      if (fromIso && row.entry.at < fromIso) {
        done = true;
        break;
      }
      if (matchesFilter(row.entry, filter)) kept.push({ id: row.id, ...row.entry });
    }
    pages.push(kept);
    if (done) break;
    before = rows.at(-1)!.id;
  }
  for (const page of pages.reverse()) yield* page.reverse();
}
