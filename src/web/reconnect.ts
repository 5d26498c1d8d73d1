import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import type { Config } from '../config.js';
import { AppError } from '../errors.js';
import { messageInput } from '../mail/compose.js';
import type { MailServices } from '../mail/service.js';
import type { SmtpServerView } from '../mail/servers.js';
import type { TokenService } from '../tokens/refresh.js';
import { LinkRefusal, type ReconnectLinks, type ReconnectLinkView } from '../tokens/reconnect-links.js';
import { actorOf } from './auth.js';
import { confirmed } from './confirm.js';
import type { WebContext } from './context.js';
import { readCookie } from './cookies.js';
import { renderPage } from './render.js';
import { setFlash } from './session.js';
import { formText, parseId, parseInput } from './validate.js';
import { translatorFor } from './language.js';

/**
 * Reconnect links: Create / Revoke on the server page (views/partials/reconnect-links.eta) and by API, the
 * page a link opens (`/connect/<token>`, no login, nothing kept in a session) and the OAuth callback of the
 * authorizations those pages start. The callback route runs before the admin one and passes on every
 * `state` that is not a reconnect transaction's. The token never reaches a log line or a Referer.
 */

const TOKEN_PARAM = z.string().min(1).max(200);

const createForm = z.object({
  emailVia: formText(z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'not a valid server id')).optional(),
  emailTo: formText(z.email('not an email address')).optional(),
});

export const createBody = z.strictObject({
  emailVia: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/, 'not a valid server id')
    .optional(),
  emailTo: z.email('not an email address').optional(),
});

const HEALTHY_CHOICES = 20;
export const listQuery = z.object({
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,200}$/, 'not a cursor of this list')
    .optional(),
});

/**
 * One page of links, newest first. The cursor names the last link shown by its creation time and id, so a
 * page still follows on correctly when that link was swept meanwhile.
 */
export function pageOf(
  all: ReconnectLinkView[],
  limit: number,
  cursor: string | undefined,
): { items: ReconnectLinkView[]; next?: string } {
  let rest = all;
  if (cursor) {
    const [createdAt = '', id = ''] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
    if (!createdAt || !id) throw refusedField('cursor', 'not a cursor of this list');
    rest = all.filter((l) => l.createdAt < createdAt || (l.createdAt === createdAt && l.id < id));
  }
  const items = rest.slice(0, limit);
  const last = items.at(-1);
  return rest.length > limit && last
    ? { items, next: Buffer.from(`${last.createdAt}|${last.id}`).toString('base64url') }
    : { items };
}

const UNHEALTHY = 'choose another server that can send (not this one, not paused, authorized)';

const PROVIDER_NAMES: Record<string, string> = { google: 'Google', microsoft: 'Microsoft', custom: 'the provider' };

export interface ReconnectRouterDeps {
  config: Pick<Config, 'MAILGATE_BASE_URL' | 'secureCookies'>;
  links: ReconnectLinks;
  mail: Pick<MailServices, 'servers' | 'queue'>;
  tokens: Pick<TokenService, 'get'>;
}

/** Whether a server can carry the link's email: not this one, not paused, and with a live grant when on OAuth. */
async function canCarry(deps: Pick<ReconnectRouterDeps, 'tokens'>, s: SmtpServerView, exceptId: string) {
  if (s.id === exceptId || s.paused) return false;
  return s.authMethod !== 'oauth2' || (await deps.tokens.get(s.id))?.value.status === 'active';
}

/** Servers offered to carry the link's email: the first HEALTHY_CHOICES that can, from at most 500 servers. */
export async function healthyServers(
  deps: Pick<ReconnectRouterDeps, 'mail' | 'tokens'>,
  exceptId: string,
): Promise<SmtpServerView[]> {
  const out: SmtpServerView[] = [];
  let cursor: string | undefined;
  for (let scanned = 0; scanned < 500 && out.length < HEALTHY_CHOICES;) {
    const page = await deps.mail.servers.page({ limit: 100, cursor });
    scanned += page.items.length;
    const ok = await Promise.all(page.items.map((s) => canCarry(deps, s, exceptId)));
    out.push(...page.items.filter((_, i) => ok[i]));
    if (!page.next) break;
    cursor = page.next;
  }
  return out.slice(0, HEALTHY_CHOICES);
}

/** The chosen server when it can carry the link's email (read by its id, whatever its place in the list). */
async function healthyServer(
  deps: Pick<ReconnectRouterDeps, 'mail' | 'tokens'>,
  exceptId: string,
  id: string,
): Promise<SmtpServerView | undefined> {
  const s = await deps.mail.servers.get(id).catch(() => null);
  return s && (await canCarry(deps, s, exceptId)) ? s : undefined;
}

/** What the partial on the server page needs. */
export async function reconnectPanelData(
  deps: Pick<ReconnectRouterDeps, 'links' | 'mail' | 'tokens'>,
  server: SmtpServerView,
): Promise<{ links: ReconnectLinkView[]; healthy: { id: string; name: string }[]; mailbox: string | null }> {
  const links = (await deps.links.list(server.id)).filter((l) => l.status === 'active');
  const healthy = (await healthyServers(deps, server.id)).map((s) => ({ id: s.id, name: s.name }));
  const mailbox = server.username ?? (await deps.tokens.get(server.id))?.value.mailbox ?? null;
  return { links, healthy, mailbox };
}

function cookieName(config: Pick<Config, 'secureCookies'>): string {
  return config.secureCookies ? '__Host-mailgate.reconnect' : 'mailgate.reconnect';
}

export function reconnectRouter({ auth, eta }: WebContext, deps: ReconnectRouterDeps): Router {
  const router = Router();
  const linkUrl = (token: string) => `${deps.config.MAILGATE_BASE_URL}/connect/${token}`;
  const cookieOptions = {
    httpOnly: true,
    sameSite: 'lax' as const,
    secure: deps.config.secureCookies,
    path: '/',
  };

  async function emailLink(
    req: Request,
    serverId: string,
    input: { emailVia?: string | undefined; emailTo?: string | undefined },
    created: { token: string; expiresAt: string },
  ): Promise<{ to: string; server: string } | null> {
    if (!input.emailVia) return null;
    const server = await deps.mail.servers.get(serverId);
    const via = await healthyServer(deps, serverId, input.emailVia);
    const mailbox = server.username ?? (await deps.tokens.get(serverId))?.value.mailbox ?? null;
    const to = input.emailTo ?? mailbox;
    if (!via) {
      throw refusedField('emailVia', UNHEALTHY);
    }
    if (!to) throw refusedField('emailTo', 'this server names no mailbox: enter the address');
    const t = translatorFor(req);
    const integration = server.oauthIntegrationId ? await deps.links.providerOf(server.oauthIntegrationId) : null;
    const params = {
      server: server.name,
      mailbox: mailbox ?? to,
      provider: PROVIDER_NAMES[integration ?? 'custom'] ?? 'the provider',
      url: linkUrl(created.token),
      expiresAt: created.expiresAt,
    };
    await deps.mail.queue.enqueue(
      messageInput.parse({
        serverId: via.id,
        to,
        subject: t('reconnect.email.subject', params),
        text: t('reconnect.email.body', params),
      }),
    );
    return { to, server: via.name };
  }

  // ------------------------------------------------------------------------------------- admin side

  router.post('/admin/smtp-servers/:id/reconnect-links', auth.page('sysadmin'), async (req, res) => {
    const serverId = parseId(req);
    const input = parseInput(createForm, req.body);
    // Check the email choice before anything is created, so a refused form leaves nothing behind.
    await checkEmailChoice(serverId, input);
    const created = await deps.links.create(serverId, actorOf(res), req.ip);
    const emailed = await emailLink(req, serverId, input, created);
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Referrer-Policy', 'no-referrer');
    const t = res.locals.t as (k: string) => string;
    renderPage(res, eta, 'reconnect-link-created', {
      title: t('reconnect.created.title'),
      serverId,
      url: linkUrl(created.token),
      expiresAt: created.expiresAt,
      emailed,
    });
  });

  router.post('/admin/smtp-servers/:id/reconnect-links/:linkId/revoke', auth.page('sysadmin'), async (req, res) => {
    const serverId = parseId(req);
    const linkId = parseId(req, 'linkId');
    const server = await deps.mail.servers.get(serverId);
    const t = res.locals.t as (k: string, p?: Record<string, string>) => string;
    const back = `/admin/smtp-servers/${encodeURIComponent(serverId)}`;
    if (
      !confirmed(req, res, eta, {
        title: t('reconnect.revoke.title'),
        question: t('reconnect.revoke.question', { server: server.name }),
        consequence: t('reconnect.revoke.consequence'),
        cancelHref: back,
      })
    )
      return;
    await deps.links.revoke(serverId, linkId, actorOf(res), req.ip);
    setFlash(req, 'ok', t('reconnect.revoked'));
    res.redirect(303, back);
  });

  router.post('/api/v1/smtp-servers/:id/reconnect-links', auth.api('admin'), async (req, res) => {
    const serverId = parseId(req);
    const input = parseInput(createBody, req.body ?? {});
    await checkEmailChoice(serverId, input);
    const created = await deps.links.create(serverId, actorOf(res), req.ip);
    const emailed = await emailLink(req, serverId, input, created);
    res.status(201).json({
      id: created.id,
      url: linkUrl(created.token),
      expiresAt: created.expiresAt,
      ...(emailed ? { emailed } : {}),
    });
  });

  router.get('/api/v1/smtp-servers/:id/reconnect-links', auth.api('admin'), async (req, res) => {
    const serverId = parseId(req);
    const { limit, cursor } = parseInput(listQuery, req.query);
    await deps.mail.servers.get(serverId);
    res.json(pageOf(await deps.links.list(serverId), limit, cursor));
  });

  router.delete('/api/v1/smtp-servers/:id/reconnect-links/:linkId', auth.api('admin'), async (req, res) => {
    res.json(await deps.links.revoke(parseId(req), parseId(req, 'linkId'), actorOf(res), req.ip));
  });

  async function checkEmailChoice(
    serverId: string,
    input: { emailVia?: string | undefined; emailTo?: string | undefined },
  ): Promise<void> {
    const server = await deps.mail.servers.get(serverId);
    if (!input.emailVia) return;
    if (!(await healthyServer(deps, serverId, input.emailVia))) throw refusedField('emailVia', UNHEALTHY);
    if (!input.emailTo && !server.username && !(await deps.tokens.get(serverId)))
      throw refusedField('emailTo', 'this server names no mailbox: enter the address');
  }

  // ------------------------------------------------------------------------------- the owner's side

  function refused(res: Response, err: LinkRefusal): void {
    const t = res.locals.t as (k: string, p?: Record<string, string>) => string;
    const status = ['used', 'revoked', 'expired'].includes(err.reason)
      ? 410
      : err.reason === 'tampered' || err.reason === 'unknown'
        ? 404
        : err.reason === 'binding'
          ? 403
          : 400;
    renderPage(
      res,
      eta,
      'connect',
      {
        title: t('reconnect.refused.title'),
        state: 'refused',
        reason: err.reason,
        message: t(`reconnect.refused.${err.reason}`, { expected: '', code: '', ...err.params }),
      },
      status,
    );
  }

  function linkHeaders(res: Response): void {
    // The token is in the URL: no Referer to the provider or anywhere else, no caching.
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('Cache-Control', 'no-store');
  }

  router.get('/connect/:token', async (req, res) => {
    linkHeaders(res);
    const token = parseInput(TOKEN_PARAM, req.params.token);
    try {
      const link = await deps.links.describe(token, req.ip);
      const t = res.locals.t as (k: string) => string;
      renderPage(res, eta, 'connect', {
        title: t('reconnect.page.title'),
        state: 'ready',
        action: `/connect/${token}`,
        ...link,
        providerName: PROVIDER_NAMES[link.provider ?? 'custom'] ?? 'the provider',
      });
    } catch (err) {
      if (err instanceof LinkRefusal) return refused(res, err);
      throw err;
    }
  });

  router.post('/connect/:token', async (req, res) => {
    linkHeaders(res);
    const token = parseInput(TOKEN_PARAM, req.params.token);
    try {
      const { url, cookie } = await deps.links.begin(token, req.ip);
      res.cookie(cookieName(deps.config), cookie, { ...cookieOptions, maxAge: 10 * 60_000 });
      const csp = String(res.getHeader('Content-Security-Policy') ?? '');
      res.setHeader('Content-Security-Policy', csp.replace(/form-action [^;]*/, `form-action 'self' ${url.origin}`));
      const t = res.locals.t as (k: string) => string;
      renderPage(res, eta, 'connect', {
        title: t('reconnect.page.title'),
        state: 'redirect',
        providerOrigin: url.origin,
        target: `${url.origin}${url.pathname}`,
        params: [...url.searchParams.entries()].map(([name, value]) => ({ name, value })),
      });
    } catch (err) {
      if (err instanceof LinkRefusal) return refused(res, err);
      throw err;
    }
  });

  router.get('/oauth/callback', async (req, res, next) => {
    const callbackUrl = new URL(req.originalUrl, deps.config.MAILGATE_BASE_URL);
    if (!(await deps.links.owns(callbackUrl.searchParams.get('state')))) return next();
    linkHeaders(res);
    res.clearCookie(cookieName(deps.config), cookieOptions);
    try {
      const done = await deps.links.complete(callbackUrl, readCookie(req, cookieName(deps.config)), req.ip);
      const server = await deps.mail.servers.get(done.serverId);
      const t = res.locals.t as (k: string) => string;
      renderPage(res, eta, 'connect', {
        title: t('reconnect.done.title'),
        state: 'done',
        mailbox: done.mailbox,
        serverName: server.name,
      });
    } catch (err) {
      if (err instanceof LinkRefusal) return refused(res, err);
      throw err;
    }
  });

  return router;
}

/**
 * An error handler placed before the app's: whatever fails on a link's path (a missing form token, a store
 * error) is logged with the request path, so the token is taken out of it first.
 */
export function redactLinkPaths(err: unknown, req: Request, _res: Response, next: (err: unknown) => void): void {
  if (req.path.startsWith('/connect/')) req.url = '/connect/(token)';
  next(err);
}

/** A refused field of the create form or body: nothing was created. */
function refusedField(field: string, message: string): AppError {
  return new AppError('validation_failed', { message: `${field}: ${message}`, details: [{ field, message }] });
}
