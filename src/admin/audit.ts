import { redact } from '../log.js';
import type { Logs } from '../store/store.js';
import {
  AUDIT_LOG,
  AUDIT_PAGE_MAX,
  exportAudit,
  queryAudit,
  type AuditEntry,
  type AuditFilter,
  type AuditQueryPage,
  type AuditRecord,
} from './audit-query.js';

import type { AuditEventInput, AuditRecorder } from './types.js';

export { AUDIT_LOG, AUDIT_PAGE_MAX, type AuditEntry, type AuditRecord } from './audit-query.js';

/**
 * The audit log: append-only entries in the store's `audit` log, newest first when read. Entries carry
 * who (actor), what (action, target), the outcome, when and from where; `detail` is passed through the
 * log redaction as a last line of defence, so a secret handed in by mistake is masked, not kept.
 */

export interface AuditPage {
  entries: AuditRecord[];
  /** Pass as `before` to read the next (older) page; null when this page is the last. */
  nextBefore: string | null;
}

export class AuditLog implements AuditRecorder {
  constructor(
    private readonly store: Logs,
    private readonly now: () => number = Date.now,
  ) {}

  async record(event: AuditEventInput): Promise<void> {
    const entry: AuditEntry = {
      at: new Date(this.now()).toISOString(),
      actor: event.actor,
      action: event.action,
      outcome: event.outcome,
    };
    if (event.target !== undefined) entry.target = event.target;
    if (event.ip !== undefined) entry.ip = event.ip;
    if (event.detail !== undefined) entry.detail = redact(event.detail) as AuditEntry['detail'];
    await this.store.append(AUDIT_LOG, entry);
  }

  /** One page, newest first. */
  async list(options: { before?: string; limit?: number } = {}): Promise<AuditPage> {
    const limit = Math.min(Math.max(options.limit ?? 50, 1), AUDIT_PAGE_MAX);
    // One more than asked tells whether an older page exists without a second read.
    const rows = await this.store.readLog<AuditEntry>(AUDIT_LOG, { before: options.before, limit: limit + 1 });
    const page = rows.slice(0, limit).map((r) => ({ id: r.id, ...r.entry }));
    return { entries: page, nextBefore: rows.length > limit ? (page.at(-1)?.id ?? null) : null };
  }

  /** One page of the entries that match `filter`, newest first (audit-query.ts). */
  query(
    filter: AuditFilter,
    options: { cursor?: string | undefined; limit?: number | undefined } = {},
  ): Promise<AuditQueryPage> {
    return queryAudit(this.store, filter, options);
  }

  /** Every entry that matches `filter`, oldest first (JSON lines for a SIEM). */
  exportFiltered(filter: AuditFilter): AsyncGenerator<AuditRecord> {
    return exportAudit(this.store, filter);
  }

  /** Every entry at or after `since`, oldest first (for JSON-lines export to a SIEM). */
  async *exportSince(since: Date): AsyncGenerator<AuditRecord> {
    const sinceIso = since.toISOString();
    const collected: AuditRecord[][] = [];
    let before: string | undefined;
    for (;;) {
      const rows = await this.store.readLog<AuditEntry>(AUDIT_LOG, { before, limit: AUDIT_PAGE_MAX });
      const kept = rows.filter((r) => r.entry.at >= sinceIso).map((r) => ({ id: r.id, ...r.entry }));
      collected.push(kept);
      if (rows.length < AUDIT_PAGE_MAX || kept.length < rows.length) break;
      before = rows.at(-1)?.id;
    }
    for (const page of collected.reverse()) yield* page.reverse();
  }
}
