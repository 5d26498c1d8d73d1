import { Router, type RequestHandler, type Response } from 'express';
import { z } from 'zod';
import { AppError } from '../errors.js';
import { createChannelInput, updateChannelInput } from '../notify/channels.js';
import { EVENT_TYPES, type ChannelView } from '../notify/model.js';
import type { NotifyServices } from '../notify/service.js';
import { actorOf } from './auth.js';
import { bannerSource, type Banner } from './banners.js';
import { confirmed } from './confirm.js';
import type { WebContext } from './context.js';
import { translatorFor } from './language.js';
import { renderPage } from './render.js';
import { setFlash } from './session.js';
import { pageOf, pageQuery } from './pagination.js';
import { formList, formText, parseId, parseInput, zodDetails } from './validate.js';

/**
 * Notification channels: the /admin/notifications page (add, Send test, delete) and
 * /api/v1/notification-channels (CRUD, `POST :id/test` → `{ok, error?}`). Secrets are write-only.
 */

export interface NotificationsRouterDeps {
  notify: Pick<NotifyServices, 'channels' | 'test' | 'alertServer' | 'worker'>;
}

/** The form's fields, as the JSON body would have them (blank inputs dropped, the recipients split). */
const formBody = z.object({
  name: formText(z.string().optional()),
  type: formText(z.string().optional()),
  url: formText(z.string().optional()),
  secret: z.string().optional(),
  to: formText(z.string().optional()),
  events: formList(z.string()),
});

export function notificationsRouter({ auth, eta }: WebContext, deps: NotificationsRouterDeps): Router {
  const router = Router();
  const { channels } = deps.notify;

  async function showPage(
    res: Response,
    extra: { errors?: { field: string; message: string }[]; form?: Record<string, unknown> } = {},
    status = 200,
  ) {
    const [list, alertServer, pending] = await Promise.all([
      channels.list(),
      deps.notify.alertServer(),
      deps.notify.worker.pendingByChannel(),
    ]);
    renderPage(
      res,
      eta,
      'notifications',
      {
        title: (res.locals.t as (k: string) => string)('notifications.title'),
        channels: list.map((c) => ({ ...c, pending: pending.get(c.id) ?? 0 })),
        alertServer,
        eventTypes: EVENT_TYPES,
        errors: extra.errors ?? [],
        form: extra.form ?? {},
      },
      status,
    );
  }

  router.get('/admin/notifications', auth.page('admin'), async (_req, res) => {
    await showPage(res);
  });

  router.post('/admin/notifications', auth.page('sysadmin'), async (req, res) => {
    const f = formBody.parse(req.body);
    const input = {
      ...(f.name !== undefined ? { name: f.name } : {}),
      ...(f.type !== undefined ? { type: f.type } : {}),
      ...(f.type === 'webhook' ? { url: f.url, secret: f.secret } : {}),
      ...(f.type === 'email' ? { to: (f.to ?? '').split(/[\s,]+/).filter(Boolean) } : {}),
      ...(f.events.length > 0 ? { events: f.events } : {}),
    };
    const parsed = createChannelInput.safeParse(input);
    const form = { name: f.name, type: f.type, url: f.url, to: f.to, events: f.events };
    if (!parsed.success) {
      await showPage(res, { errors: zodDetails(parsed.error), form }, 400);
      return;
    }
    try {
      const created = await channels.create(parsed.data, actorOf(res), req.ip);
      setFlash(req, 'ok', translatorFor(req)('notifications.created', { name: created.name }));
      res.redirect(303, '/admin/notifications');
    } catch (err) {
      if (!(err instanceof AppError) || err.code !== 'validation_failed') throw err;
      await showPage(res, { errors: err.details, form }, 400);
    }
  });

  async function showEdit(
    res: Response,
    channel: ChannelView,
    extra: { errors?: { field: string; message: string }[]; form?: Record<string, unknown> } = {},
    status = 200,
  ) {
    const form = extra.form ?? {
      name: channel.name,
      url: channel.url,
      to: (channel.to ?? []).join(', '),
      events: channel.events ?? [],
    };
    renderPage(
      res,
      eta,
      'notification-channel',
      {
        title: (res.locals.t as (k: string) => string)('notifications.title'),
        edit: channel,
        eventTypes: EVENT_TYPES,
        errors: extra.errors ?? [],
        form,
      },
      status,
    );
  }

  router.get('/admin/notifications/:id', auth.page('sysadmin'), async (req, res) => {
    await showEdit(res, await channels.get(parseId(req)));
  });

  router.post('/admin/notifications/:id', auth.page('sysadmin'), async (req, res) => {
    const channel = await channels.get(parseId(req));
    const f = formBody.parse(req.body);
    const input = {
      ...(f.name !== undefined ? { name: f.name } : {}),
      ...(channel.type === 'webhook' && f.url !== undefined ? { url: f.url } : {}),
      // A blank secret keeps the current one (write-only: it is never sent back to the form).
      ...(channel.type === 'webhook' && f.secret ? { secret: f.secret } : {}),
      ...(channel.type === 'email' ? { to: (f.to ?? '').split(/[\s,]+/).filter(Boolean) } : {}),
      events: f.events.length > 0 ? f.events : null,
    };
    const form = { name: f.name, url: f.url, to: f.to, events: f.events };
    const parsed = updateChannelInput.safeParse(input);
    if (!parsed.success) {
      await showEdit(res, channel, { errors: zodDetails(parsed.error), form }, 400);
      return;
    }
    try {
      const updated = await channels.update(channel.id, parsed.data, actorOf(res), req.ip);
      setFlash(req, 'ok', translatorFor(req)('notifications.updated', { name: updated.name }));
      res.redirect(303, '/admin/notifications');
    } catch (err) {
      if (!(err instanceof AppError) || err.code !== 'validation_failed') throw err;
      await showEdit(res, channel, { errors: err.details, form }, 400);
    }
  });

  router.post('/admin/notifications/:id/test', auth.page('sysadmin'), async (req, res) => {
    const id = parseId(req);
    const channel = await channels.get(id);
    const result = await deps.notify.test(id);
    const t = translatorFor(req);
    setFlash(
      req,
      result.ok ? 'ok' : 'error',
      result.ok
        ? t('notifications.testOk', { name: channel.name })
        : t('notifications.testFailed', { name: channel.name, error: result.error ?? '' }),
    );
    res.redirect(303, '/admin/notifications');
  });

  router.post('/admin/notifications/:id/delete', auth.page('sysadmin'), async (req, res) => {
    const id = parseId(req);
    const channel = await channels.get(id);
    const t = translatorFor(req);
    const ok = confirmed(req, res, eta, {
      title: t('notifications.confirmDelete.title'),
      question: t('notifications.confirmDelete.question', { name: channel.name }),
      consequence: t('notifications.confirmDelete.consequence'),
      cancelHref: '/admin/notifications',
    });
    if (!ok) return;
    await channels.remove(id, actorOf(res), req.ip);
    setFlash(req, 'ok', t('notifications.deleted', { name: channel.name }));
    res.redirect(303, '/admin/notifications');
  });

  router.post('/api/v1/notification-channels', auth.api('admin'), async (req, res) => {
    const input = parseInput(createChannelInput, req.body);
    const created = await channels.create(input, actorOf(res), req.ip);
    res.status(201).json(created);
  });

  router.get('/api/v1/notification-channels', auth.api('admin'), async (req, res) => {
    const { limit, cursor } = parseInput(pageQuery, req.query);
    // Reads the page (one more tells a next page), never every channel.
    res.json(pageOf(await channels.page({ limit: limit + 1, after: cursor }), limit, (c) => c.id));
  });

  router.get('/api/v1/notification-channels/:id', auth.api('admin'), async (req, res) => {
    res.json(await channels.get(parseId(req)));
  });

  const update: RequestHandler = async (req, res) => {
    const id = parseId(req);
    const input = parseInput(updateChannelInput, req.body);
    res.json(await channels.update(id, input, actorOf(res), req.ip));
  };
  router.patch('/api/v1/notification-channels/:id', auth.api('admin'), update);
  router.put('/api/v1/notification-channels/:id', auth.api('admin'), update);

  router.delete('/api/v1/notification-channels/:id', auth.api('admin'), async (req, res) => {
    await channels.remove(parseId(req), actorOf(res), req.ip);
    res.status(204).end();
  });

  router.post('/api/v1/notification-channels/:id/test', auth.api('admin'), async (req, res) => {
    const id = parseId(req);
    await channels.get(id);
    res.json(await deps.notify.test(id));
  });

  return router;
}

const BANNER_KEYS = {
  needs_reauth: 'notifications.banner.needsReauth',
  secret_expiring: 'notifications.banner.secretExpiring',
  secret_expired: 'notifications.banner.secretExpired',
} as const;

/** One banner line while a grant needs re-authorization or a secret expires within 14 days (cached: see attention.ts). */
export function notificationBanners(notify: Pick<NotifyServices, 'attention'>): RequestHandler {
  return bannerSource(async (res) => {
    const items = await notify.attention.items();
    const first = items[0];
    if (!first) return [];
    const t = res.locals.t as (key: string, params?: Record<string, string | number>) => string;
    const more = items.length > 1 ? ` ${t('notifications.banner.more', { count: items.length - 1 })}` : '';
    const banner: Banner = {
      kind: first.kind === 'secret_expiring' ? 'warning' : 'error',
      message: `${t(BANNER_KEYS[first.kind], { name: first.name })}${more}`,
      href: first.href,
      linkText: t('notifications.banner.fix'),
    };
    return [banner];
  });
}
