import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { actorOf } from './auth.js';
import type { MailServices } from '../mail/service.js';
import type { MessageStatus } from '../mail/queue.js';
import { confirmed } from './confirm.js';
import type { WebContext } from './context.js';
import type { Translate } from '../i18n/i18n.js';
import { chartData, dayLabeller } from './queue-chart.js';
import { renderPage } from './render.js';
import { setFlash } from './session.js';
import { timesFor, timeZoneOf } from './time.js';
import { formText, idParam, parseId, parseInput } from './validate.js';

/**
 * /admin/mail-queue: the messages newest first, filtered by status, server and recipient and paged with a
 * cursor; a chart of outcomes per hour over 7 days; one page per message (attempts, last error with its hint,
 * each recipient's result); resend, delete (confirmed) and flush for sysadmins.
 */

const STATUSES = ['queued', 'sending', 'sent', 'deferred', 'held', 'failed'] as const satisfies MessageStatus[];

const listQuery = z.object({
  status: formText(z.enum(STATUSES).optional()),
  server: formText(idParam.optional()),
  recipient: formText(z.string().max(254).optional()),
  cursor: formText(idParam.optional()),
});

function age(t: Translate, ms: number | null): string {
  if (ms === null) return '—';
  const s = Math.floor(ms / 1000);
  if (s < 60) return t('queue.age.seconds', { n: s });
  if (s < 3600) return t('queue.age.minutes', { n: Math.floor(s / 60) });
  if (s < 86_400) return t('queue.age.hours', { h: Math.floor(s / 3600), m: Math.floor((s % 3600) / 60) });
  return t('queue.age.days', { n: Math.floor(s / 86_400) });
}

function translator(res: Response): Translate {
  return res.locals.t as Translate;
}

/** Servers offered by the queue page's server filter. */
const SERVER_CHOICES = 50;

export function mailQueueRouter(
  { auth, eta }: WebContext,
  deps: { mail: Pick<MailServices, 'queue' | 'servers'> },
): Router {
  const queue = deps.mail.queue;
  const router = Router();

  /** Names of these servers only (resolved from the per-instance cache): a page never reads every server. */
  async function serverNames(ids: Iterable<string>): Promise<Map<string, string>> {
    const names = new Map<string, string>();
    await Promise.all(
      [...new Set(ids)].map(async (id) => {
        const s = await deps.mail.servers.resolve(id).catch(() => null);
        if (s) names.set(id, s.name);
      }),
    );
    return names;
  }

  function canManage(res: Response): boolean {
    return (res.locals.actor as { role?: string } | undefined)?.role === 'sysadmin';
  }

  router.get('/admin/mail-queue', auth.page('admin'), async (req, res) => {
    const t = translator(res);
    const query = parseInput(listQuery, req.query);
    const lang = String(res.locals.lang ?? 'en');
    const times = timesFor(req, lang);
    const [overview, settings, firstServers, pausedServers, page, hourly] = await Promise.all([
      queue.overview(1),
      deps.mail.servers.settings(),
      // The filter offers the first servers (and the one chosen); with more, a server is chosen by its id.
      deps.mail.servers.page({ limit: SERVER_CHOICES }),
      deps.mail.servers.paused(50),
      queue.browse({ status: query.status, serverId: query.server, recipient: query.recipient, cursor: query.cursor }),
      queue.hourly(),
    ]);
    const names = await serverNames([...page.items.map((m) => m.serverId), ...(query.server ? [query.server] : [])]);
    const servers = firstServers.items.map((s) => ({ id: s.id, name: s.name }));
    if (query.server && !servers.some((s) => s.id === query.server))
      servers.unshift({ id: query.server, name: names.get(query.server) ?? query.server });
    const filters = { status: query.status ?? '', server: query.server ?? '', recipient: query.recipient ?? '' };
    const link = (cursor?: string) => {
      const params = new URLSearchParams(Object.entries(filters).filter(([, v]) => v !== ''));
      if (cursor) params.set('cursor', cursor);
      const s = params.toString();
      return `/admin/mail-queue${s ? `?${s}` : ''}`;
    };
    renderPage(res, eta, 'mail-queue', {
      title: t('queue.title'),
      overview,
      oldestAge: age(t, overview.oldestAgeMs),
      oldestAt: times(overview.oldestQueuedAt),
      page,
      times,
      statuses: STATUSES,
      filters,
      filtered: Object.values(filters).some((v) => v !== ''),
      servers,
      serverName: (id: string) => names.get(id) ?? id,
      pausedServers,
      sendingEnabled: settings.outgoingEnabled && !settings.disabledByEnvironment,
      canManage: canManage(res),
      chart: chartData(hourly, times, dayLabeller(lang, timeZoneOf(req))),
      firstHref: query.cursor ? link() : null,
      nextHref: page.next ? link(page.next) : null,
    });
  });

  router.get('/admin/mail-queue/:id', auth.page('admin'), async (req, res) => {
    const t = translator(res);
    const m = await queue.get(parseId(req));
    const names = await serverNames([m.serverId]);
    renderPage(res, eta, 'mail-message', {
      title: t('queue.message.title', { subject: m.subject }),
      m,
      times: timesFor(req, String(res.locals.lang ?? 'en')),
      serverName: names.get(m.serverId) ?? m.serverId,
      serverKnown: names.has(m.serverId),
      canManage: canManage(res),
    });
  });

  router.post('/admin/mail-queue/flush', auth.page('sysadmin'), async (req, res) => {
    const n = await queue.flush(actorOf(res));
    setFlash(req, 'ok', translator(res)('queue.flash.flushed', { n }));
    res.redirect(303, '/admin/mail-queue');
  });

  router.post('/admin/mail-queue/:id/resend', auth.page('sysadmin'), async (req, res) => {
    const m = await queue.resend(parseId(req), actorOf(res));
    setFlash(req, 'ok', translator(res)('queue.flash.resent', { id: m.id }));
    res.redirect(303, `/admin/mail-queue/${encodeURIComponent(m.id)}`);
  });

  router.post('/admin/mail-queue/:id/delete', auth.page('sysadmin'), async (req: Request, res) => {
    const t = translator(res);
    const id = parseId(req);
    const m = await queue.get(id);
    const ok = confirmed(req, res, eta, {
      title: t('queue.delete.title'),
      question: t('queue.delete.question', { subject: m.subject, id }),
      consequence: t('queue.delete.consequence'),
      cancelHref: `/admin/mail-queue/${encodeURIComponent(id)}`,
    });
    if (!ok) return;
    await queue.remove(id, actorOf(res));
    setFlash(req, 'ok', t('queue.flash.deleted', { id }));
    res.redirect(303, '/admin/mail-queue');
  });

  return router;
}
