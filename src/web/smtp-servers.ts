import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import type { AuditLog } from '../admin/audit.js';
import type { Actor } from '../admin/types.js';
import type { Config } from '../config.js';
import { AppError, isAppError, type ErrorDetail } from '../errors.js';
import { createServerInput, updateServerInput, type SmtpServerView } from '../mail/servers.js';
import type { MailServices } from '../mail/service.js';
import type { TestConnectionResult } from '../mail/verify.js';
import { actorOf } from './auth.js';
import type { WebContext } from './context.js';
import { renderPage } from './render.js';
import { setFlash } from './session.js';
import { parseId, parseInput } from './validate.js';

/**
 * SMTP servers: the /admin/smtp-servers pages (list with the outgoing-mail switch, the Add/Update form,
 * Test connection) and /api/v1/smtp-servers. Only a sysadmin configures servers; an admin may read them
 * and switch outgoing mail on or off. Passwords are write-only: no response or page ever contains one.
 */

export interface SmtpServersRouterOptions {
  /** Data for views/partials/smtp-oauth.eta (Authorize / Re-authorize / Disconnect and grant state). */
  oauthPanel?: (server: SmtpServerView) => Promise<unknown>;
  /** The OAuth grant state of a server, for the needs-reauth badge in the list. */
  oauthStatus?: (serverId: string) => Promise<string | null>;
  /** OAuth 2.0 integrations to choose from on the form. */
  integrations?: () => Promise<{ id: string; name: string }[]>;
  /** Warnings shown above the list before mail stops: grants to re-authorize, client secrets expiring, Google apps in testing. */
  warnings?: () => Promise<{ kind: string; target: string; message: string }[]>;
}

export const outgoingBody = z.strictObject({ enabled: z.boolean() });
const switchForm = z.object({
  enabled: z.enum(['true', 'false'], 'expected true or false'),
  _csrf: z.string().optional(),
});

function withoutCsrf(body: unknown): Record<string, unknown> {
  const { _csrf: _ignored, ...rest } = (body ?? {}) as Record<string, unknown>;
  return rest;
}

/** Unticked checkboxes are absent from a form post: on the edit form absent means false. */
function formUpdateBody(body: unknown): Record<string, unknown> {
  const b = withoutCsrf(body);
  return { ...b, tls: b.tls ?? '', isDefault: b.isDefault ?? '', changePassword: b.changePassword ?? '' };
}

function formValues(body: Record<string, unknown>): Record<string, unknown> {
  const { password: _p, ...rest } = body;
  return {
    ...rest,
    tls: rest.tls === 'on' || rest.tls === true,
    isDefault: rest.isDefault === 'on' || rest.isDefault === true,
  };
}

function validationDetails(err: unknown): ErrorDetail[] | null {
  return isAppError(err) && err.code === 'validation_failed' ? err.details : null;
}

export interface SmtpServersRouterDeps {
  config: Pick<Config, 'MAILGATE_SMTP_HOST' | 'MAILGATE_SMTP_LOCALHOST' | 'MAILGATE_SMTP_PORT'>;
  audit: Pick<AuditLog, 'record'>;
  mail: Pick<MailServices, 'servers' | 'queue' | 'test'>;
}

export function smtpServersRouter(
  { auth, eta }: WebContext,
  deps: SmtpServersRouterDeps,
  options: SmtpServersRouterOptions = {},
): Router {
  const mail = deps.mail;
  const router = Router();

  const canConfigure = (res: Response) => {
    const a = (res.locals as { actor?: Actor }).actor;
    return a?.type === 'user' && a.role === 'sysadmin';
  };
  const auditCtx = (req: Request, res: Response) => ({ actor: actorOf(res), ...(req.ip ? { ip: req.ip } : {}) });

  /** Tokens are sent to the server's host: a new host would receive a mailbox's live access token. */
  async function refuseHostChangeWhileAuthorized(id: string, host: string | undefined): Promise<void> {
    if (host === undefined || !options.oauthStatus) return;
    if (host === (await mail.servers.get(id)).host || (await options.oauthStatus(id)) === null) return;
    const message =
      'this server holds an authorized mailbox: press Disconnect before changing the host, then Authorize again (its tokens never go to another host)';
    throw new AppError('validation_failed', { message: `host: ${message}`, details: [{ field: 'host', message }] });
  }

  async function showServer(
    res: Response,
    server: SmtpServerView | null,
    extra: { form?: Record<string, unknown>; errors?: ErrorDetail[]; test?: TestConnectionResult } = {},
    status = 200,
  ) {
    const form =
      extra.form ?? (server ? { ...server } : { protocol: 'smtp', authMethod: 'none', serviceProvider: 'custom' });
    renderPage(
      res,
      eta,
      'smtp-server',
      {
        title: server ? server.name : 'Add SMTP mail server',
        server,
        form,
        errors: extra.errors ?? [],
        test: extra.test ?? null,
        canConfigure: canConfigure(res),
        integrations: options.integrations ? await options.integrations() : null,
        // The OAuth area renders its panel (views/partials/smtp-oauth.eta) from this, when wired.
        oauth: server && server.authMethod === 'oauth2' && options.oauthPanel ? await options.oauthPanel(server) : null,
      },
      status,
    );
  }

  // ------------------------------------------------------------------------------------------ pages

  router.get('/admin/smtp-servers', auth.page('admin'), async (_req, res) => {
    const servers = await mail.servers.list();
    const withState = await Promise.all(
      servers.map(async (s) => ({
        ...s,
        needsReauth:
          s.authMethod === 'oauth2' && options.oauthStatus
            ? (await options.oauthStatus(s.id)) === 'needs_reauth'
            : false,
      })),
    );
    const config = deps.config;
    const overrides = [
      ...(config.MAILGATE_SMTP_HOST ? [{ name: 'MAILGATE_SMTP_HOST', value: config.MAILGATE_SMTP_HOST }] : []),
      ...(config.MAILGATE_SMTP_PORT ? [{ name: 'MAILGATE_SMTP_PORT', value: String(config.MAILGATE_SMTP_PORT) }] : []),
      ...(config.MAILGATE_SMTP_LOCALHOST
        ? [{ name: 'MAILGATE_SMTP_LOCALHOST', value: config.MAILGATE_SMTP_LOCALHOST }]
        : []),
    ];
    const settings = await mail.servers.settings();
    renderPage(res, eta, 'smtp-servers', {
      title: 'SMTP servers',
      servers: withState,
      warnings: options.warnings ? await options.warnings() : [],
      settings,
      sendingEnabled: settings.outgoingEnabled && !settings.disabledByEnvironment,
      overrides,
      canConfigure: canConfigure(res),
    });
  });

  router.post('/admin/smtp-servers/outgoing', auth.page('admin'), async (req, res) => {
    const { enabled } = parseInput(switchForm, req.body);
    await mail.servers.setOutgoingEnabled(enabled === 'true', auditCtx(req, res));
    setFlash(
      req,
      'ok',
      enabled === 'true' ? 'Outgoing mail is enabled.' : 'Outgoing mail is disabled: new and queued messages are held.',
    );
    res.redirect(303, '/admin/smtp-servers');
  });

  router.get('/admin/smtp-servers/new', auth.page('sysadmin'), async (_req, res) => {
    await showServer(res, null);
  });

  router.post('/admin/smtp-servers', auth.page('sysadmin'), async (req, res) => {
    const body = withoutCsrf(req.body);
    try {
      const created = await mail.servers.create(parseInput(createServerInput, body), auditCtx(req, res));
      setFlash(req, 'ok', `SMTP server "${created.name}" added. Press Test connection to check it.`);
      res.redirect(303, `/admin/smtp-servers/${created.id}`);
    } catch (err) {
      const details = validationDetails(err);
      if (!details) throw err;
      await showServer(res, null, { form: formValues(body), errors: details }, 400);
    }
  });

  router.get('/admin/smtp-servers/:id', auth.page('admin'), async (req, res) => {
    await showServer(res, await mail.servers.get(parseId(req)));
  });

  router.post('/admin/smtp-servers/:id', auth.page('sysadmin'), async (req, res) => {
    const id = parseId(req);
    const body = formUpdateBody(req.body);
    try {
      const input = parseInput(updateServerInput, body);
      await refuseHostChangeWhileAuthorized(id, input.host);
      const updated = await mail.servers.update(id, input, auditCtx(req, res));
      setFlash(req, 'ok', `SMTP server "${updated.name}" updated.`);
      res.redirect(303, `/admin/smtp-servers/${id}`);
    } catch (err) {
      const details = validationDetails(err);
      if (!details) throw err;
      await showServer(res, await mail.servers.get(id), { form: formValues(body), errors: details }, 400);
    }
  });

  router.post('/admin/smtp-servers/:id/test', auth.page('sysadmin'), async (req, res) => {
    const id = parseId(req);
    const server = await mail.servers.get(id);
    const test = await runTest(req, res, id);
    await showServer(res, server, { test });
  });

  /** Releases a paused server's held mail; audited the same way from the page and the API. */
  async function resume(req: Request, res: Response, id: string): Promise<number> {
    const released = await mail.queue.resumeServer(id);
    await deps.audit.record({
      actor: actorOf(res),
      action: 'smtp_server.resume',
      target: `smtp_server:${id}`,
      outcome: 'success',
      ...(req.ip ? { ip: req.ip } : {}),
      detail: { released },
    });
    return released;
  }

  router.post('/admin/smtp-servers/:id/resume', auth.page('sysadmin'), async (req, res) => {
    const id = parseId(req);
    const released = await resume(req, res, id);
    setFlash(req, 'ok', `Server resumed; ${released} held message(s) released.`);
    res.redirect(303, `/admin/smtp-servers/${id}`);
  });

  router.post('/admin/smtp-servers/:id/delete', auth.page('sysadmin'), async (req, res) => {
    const id = parseId(req);
    await mail.servers.remove(id, auditCtx(req, res));
    setFlash(req, 'ok', 'SMTP server deleted.');
    res.redirect(303, '/admin/smtp-servers');
  });

  async function runTest(req: Request, res: Response, id: string): Promise<TestConnectionResult> {
    const result = await mail.test(id);
    await deps.audit.record({
      actor: actorOf(res),
      action: 'smtp_server.test',
      target: `smtp_server:${id}`,
      outcome: result.ok ? 'success' : 'failure',
      ...(req.ip ? { ip: req.ip } : {}),
      detail: { durationMs: result.durationMs, ...(result.code ? { code: result.code } : {}) },
    });
    return result;
  }

  // ------------------------------------------------------------------------------------------ API

  router.get('/api/v1/smtp-servers', auth.api('admin'), async (_req, res) => {
    res.json({ items: await mail.servers.list(), settings: await mail.servers.settings() });
  });

  router.post('/api/v1/smtp-servers', auth.api('admin'), async (req, res) => {
    const input = parseInput(createServerInput, req.body ?? {});
    res.status(201).json(await mail.servers.create(input, auditCtx(req, res)));
  });

  router.get('/api/v1/smtp-servers/:id', auth.api('admin'), async (req, res) => {
    res.json(await mail.servers.get(parseId(req)));
  });

  const update = async (req: Request, res: Response) => {
    const id = parseId(req);
    const input = parseInput(updateServerInput, req.body ?? {});
    await refuseHostChangeWhileAuthorized(id, input.host);
    res.json(await mail.servers.update(id, input, auditCtx(req, res)));
  };
  router.patch('/api/v1/smtp-servers/:id', auth.api('admin'), update);
  router.put('/api/v1/smtp-servers/:id', auth.api('admin'), update);

  router.delete('/api/v1/smtp-servers/:id', auth.api('admin'), async (req, res) => {
    await mail.servers.remove(parseId(req), auditCtx(req, res));
    res.status(204).end();
  });

  router.post('/api/v1/smtp-servers/:id/test', auth.api('admin'), async (req, res) => {
    const id = parseId(req);
    await mail.servers.get(id);
    const r = await runTest(req, res, id);
    res.json({
      ok: r.ok,
      durationMs: r.durationMs,
      transcript: r.transcript,
      ...(r.ok
        ? {}
        : { error: r.error, code: r.code, hint: r.hint, ...(r.responseCode ? { responseCode: r.responseCode } : {}) }),
    });
  });

  router.post('/api/v1/smtp-servers/:id/resume', auth.api('admin'), async (req, res) => {
    const id = parseId(req);
    await mail.servers.get(id);
    res.json({ released: await resume(req, res, id) });
  });

  router.put('/api/v1/outgoing-mail', auth.api('admin'), async (req, res) => {
    const { enabled } = parseInput(outgoingBody, req.body ?? {});
    res.json(await mail.servers.setOutgoingEnabled(enabled, auditCtx(req, res)));
  });

  router.get('/api/v1/outgoing-mail', auth.api('admin'), async (_req, res) => {
    res.json(await mail.servers.settings());
  });

  return router;
}
