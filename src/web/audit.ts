import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import type { AuditLog, AuditRecord } from '../admin/audit.js';
import type { AuditFilter } from '../admin/audit-query.js';
import type { Actor } from '../admin/types.js';
import { AppError } from '../errors.js';
import type { Translate } from '../i18n/i18n.js';
import type { WebContext } from './context.js';
import { renderPage } from './render.js';
import { parseLocalTime, timesFor, timeZoneOf } from './time.js';
import { formText, parseInput } from './validate.js';

/**
 * The audit log: /admin/audit (readable by both roles), its JSON-lines export /admin/audit/export, and
 * GET /api/v1/audit; newest first, filtered by actor, action and time, paged with a cursor (`before` is the
 * older name of it). The page shows times in the reader's zone with the ISO value on hover, targets by name
 * with a link, and details as labelled values.
 */

const logId = z.string().regex(/^\d{1,16}-\d{1,16}$/, 'expected an entry id from next');

export const filterQuery = z.object({
  actor: formText(z.string().max(254).optional()),
  action: formText(
    z
      .string()
      .max(100)
      .regex(/^[a-z0-9_.]+$/, 'letters, digits, _ and . only')
      .optional(),
  ),
  from: formText(z.string().max(40).optional()),
  to: formText(z.string().max(40).optional()),
  cursor: formText(logId.optional()),
  before: formText(logId.optional()),
  limit: formText(z.coerce.number().int().min(1).max(500).optional()),
});

type FilterQuery = z.output<typeof filterQuery>;

/** Names of things by target (`smtp_server:srv_1`), resolved once per page. */
export interface TargetNames {
  servers(): Promise<{ id: string; name: string }[]>;
  integrations(): Promise<{ id: string; name: string }[]>;
  apiKeys(): Promise<{ id: string; name: string }[]>;
}

export interface AuditRouterDeps {
  audit: Pick<AuditLog, 'query' | 'exportFiltered'>;
  names?: TargetNames;
}

function toFilter(q: FilterQuery, timeZone: string): AuditFilter {
  const time = (field: 'from' | 'to') => {
    const value = q[field];
    if (value === undefined) return undefined;
    const d = parseLocalTime(value, timeZone);
    if (!d)
      throw new AppError('validation_failed', {
        message: `${field}: expected a date or time such as 2026-01-31 or 2026-01-31T12:00`,
        details: [{ field, message: 'expected a date or time such as 2026-01-31 or 2026-01-31T12:00' }],
      });
    return d;
  };
  return { actor: q.actor, action: q.action, from: time('from'), to: time('to') };
}

export interface TargetView {
  kind: string;
  text: string;
  href: string | null;
}

async function targetResolver(names: TargetNames | undefined, entries: AuditRecord[]) {
  const kinds = new Set(entries.map((e) => e.target?.split(':')[0]));
  const load = async (want: string, list: (() => Promise<{ id: string; name: string }[]>) | undefined) =>
    kinds.has(want) && list
      ? new Map((await list().catch(() => [])).map((x) => [x.id, x.name]))
      : new Map<string, string>();
  const [servers, integrations, keys] = await Promise.all([
    load('smtp_server', names && (() => names.servers())),
    load('oauth_integration', names && (() => names.integrations())),
    load('api_key', names && (() => names.apiKeys())),
  ]);
  return (target: string | undefined): TargetView | null => {
    if (!target) return null;
    const colon = target.indexOf(':');
    const kind = colon > 0 ? target.slice(0, colon) : '';
    const id = colon > 0 ? target.slice(colon + 1) : target;
    const enc = encodeURIComponent(id);
    switch (kind) {
      case 'smtp_server':
        return { kind, text: servers.get(id) ?? id, href: servers.has(id) ? `/admin/smtp-servers/${enc}` : null };
      case 'oauth_integration':
        return {
          kind,
          text: integrations.get(id) ?? id,
          href: integrations.has(id) ? `/admin/oauth-integrations/${enc}` : null,
        };
      case 'api_key':
        return { kind, text: keys.get(id) ?? id, href: keys.has(id) ? '/admin/api-keys' : null };
      case 'message':
        return { kind, text: id, href: `/admin/mail-queue/${enc}` };
      case 'user':
        return { kind, text: id, href: null };
      default:
        return { kind, text: id, href: null };
    }
  };
}

function actorLabel(t: Translate, actor: Actor): string {
  switch (actor.type) {
    case 'user':
      return actor.email;
    case 'api_key':
      return t('audit.actor.apiKey', { name: actor.name });
    case 'cli':
      return t('audit.actor.cli', { id: actor.id });
    default:
      return t('audit.actor.system', { id: actor.id });
  }
}

/** Detail values as text: lists joined, null as a dash. */
function detailRows(detail: AuditRecord['detail']): { key: string; value: string }[] {
  return Object.entries(detail ?? {}).map(([key, value]) => ({
    key,
    value: Array.isArray(value) ? value.join(', ') : value === null ? '—' : String(value),
  }));
}

function queryString(q: FilterQuery, extra: Record<string, string> = {}): string {
  const params = new URLSearchParams();
  for (const name of ['actor', 'action', 'from', 'to'] as const) {
    const v = q[name];
    if (v !== undefined) params.set(name, v);
  }
  for (const [k, v] of Object.entries(extra)) params.set(k, v);
  const s = params.toString();
  return s ? `?${s}` : '';
}

export function auditRouter({ auth, eta }: WebContext, deps: AuditRouterDeps): Router {
  const router = Router();

  router.get('/admin/audit', auth.page('admin'), async (req: Request, res: Response) => {
    const t = res.locals.t as Translate;
    const q = parseInput(filterQuery, req.query);
    const zone = timeZoneOf(req);
    const filter = toFilter(q, zone);
    const cursor = q.cursor ?? q.before;
    const page = await deps.audit.query(filter, { cursor, limit: q.limit ?? 50 });
    const target = await targetResolver(deps.names, page.entries);
    renderPage(res, eta, 'audit', {
      title: t('audit.title'),
      entries: page.entries.map((e) => ({
        ...e,
        actorLabel: actorLabel(t, e.actor),
        targetView: target(e.target),
        details: detailRows(e.detail),
      })),
      times: timesFor(req, String(res.locals.lang ?? 'en')),
      zone,
      filters: { actor: q.actor ?? '', action: q.action ?? '', from: q.from ?? '', to: q.to ?? '' },
      filtered: [q.actor, q.action, q.from, q.to].some((v) => v !== undefined),
      partial: page.partial,
      firstHref: cursor ? `/admin/audit${queryString(q)}` : null,
      nextHref: page.next ? `/admin/audit${queryString(q, { cursor: page.next })}` : null,
      exportHref: `/admin/audit/export${queryString(q)}`,
    });
  });

  router.get('/admin/audit/export', auth.page('admin'), async (req, res) => {
    const q = parseInput(filterQuery, req.query);
    const filter = toFilter(q, timeZoneOf(req));
    res.type('application/x-ndjson');
    res.setHeader('Content-Disposition', 'attachment; filename="mailgate-audit.jsonl"');
    for await (const entry of deps.audit.exportFiltered(filter)) res.write(`${JSON.stringify(entry)}\n`);
    res.end();
  });

  router.get('/api/v1/audit', auth.api('admin'), async (req, res) => {
    const q = parseInput(filterQuery, req.query);
    // The API reads times without a zone as UTC.
    const page = await deps.audit.query(toFilter(q, 'UTC'), { cursor: q.cursor ?? q.before, limit: q.limit ?? 50 });
    res.json({
      items: page.entries,
      ...(page.next ? { next: page.next } : {}),
      nextBefore: page.next,
    });
  });

  return router;
}
