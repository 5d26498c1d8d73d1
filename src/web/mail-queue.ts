import { Router } from 'express';
import { actorOf } from './auth.js';
import type { MailServices } from '../mail/service.js';
import type { WebContext } from './context.js';
import { renderPage } from './render.js';
import { setFlash } from './session.js';
import { parseId } from './validate.js';

/** /admin/mail-queue: the queue and the error queue, resend, delete, flush, and the age of the oldest message. */

function age(ms: number | null): string {
  if (ms === null) return '—';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86_400)} d`;
}

export function mailQueueRouter(
  { auth, eta }: WebContext,
  deps: { mail: Pick<MailServices, 'queue' | 'servers'> },
): Router {
  const queue = deps.mail.queue;
  const router = Router();

  router.get('/admin/mail-queue', auth.page('admin'), async (_req, res) => {
    const overview = await queue.overview(200);
    const settings = await deps.mail.servers.settings();
    // Only the servers the page names (cached per instance) and the paused ones: never every server.
    const shown = new Set([...overview.queue, ...overview.errors].map((m) => m.serverId));
    const names = new Map<string, string>();
    await Promise.all(
      [...shown].map(async (id) => {
        const s = await deps.mail.servers.resolve(id).catch(() => null);
        if (s) names.set(id, s.name);
      }),
    );
    const pausedServers = await deps.mail.servers.paused(50);
    const actor = res.locals.actor as { role?: string } | undefined;
    renderPage(res, eta, 'mail-queue', {
      title: 'Mail queue',
      overview,
      oldestAge: age(overview.oldestAgeMs),
      serverName: (id: string) => names.get(id) ?? id,
      pausedServers,
      sendingEnabled: settings.outgoingEnabled && !settings.disabledByEnvironment,
      canManage: actor?.role === 'sysadmin',
    });
  });

  router.post('/admin/mail-queue/flush', auth.page('sysadmin'), async (req, res) => {
    const n = await queue.flush(actorOf(res));
    setFlash(req, 'ok', `${n} waiting message(s) will be tried now.`);
    res.redirect(303, '/admin/mail-queue');
  });

  router.post('/admin/mail-queue/:id/resend', auth.page('sysadmin'), async (req, res) => {
    const m = await queue.resend(parseId(req), actorOf(res));
    setFlash(req, 'ok', `Message ${m.id} queued again.`);
    res.redirect(303, '/admin/mail-queue');
  });

  router.post('/admin/mail-queue/:id/delete', auth.page('sysadmin'), async (req, res) => {
    const id = parseId(req);
    await queue.remove(id, actorOf(res));
    setFlash(req, 'ok', `Message ${id} deleted.`);
    res.redirect(303, '/admin/mail-queue');
  });

  return router;
}
