import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import type { AuditLog } from '../admin/audit.js';
import type { Actor } from '../admin/types.js';
import type { Config } from '../config.js';
import { AppError, isAppError, type ErrorDetail } from '../errors.js';
import type { Translate } from '../i18n/i18n.js';
import { createServerInput, updateServerInput, type SmtpServerView } from '../mail/servers.js';
import { draftServer } from '../mail/servers/draft.js';
import type { LastTests } from '../mail/servers/last-test.js';
import { testServerInput } from '../mail/servers/validation.js';
import type { MailServices } from '../mail/service.js';
import { actorOf } from './auth.js';
import { confirmed } from './confirm.js';
import type { WebContext } from './context.js';
import { renderPage } from './render.js';
import { setFlash } from './session.js';
import {
  fieldErrors,
  formOptions,
  formValues,
  missingFields,
  presetToFill,
  typedPassword,
} from './smtp-server-form.js';
import { serverState, type OAuthFacts } from './smtp-server-state.js';
import { forgetStaleTest, registerServerTestRoutes } from './smtp-server-tests.js';
import { registerServerApiRoutes, serverListQuery } from './smtp-servers-api.js';
import { parseId, parseInput } from './validate.js';

/**
 * SMTP servers: the /admin/smtp-servers pages (list with state and the outgoing-mail switch, the Add/Update form)
 * and /api/v1/smtp-servers. Only a sysadmin configures servers; an admin may read them and switch outgoing
 * mail on or off. Passwords are write-only: no response or page ever contains one. Tests of the form's values:
 * smtp-server-tests.ts; the form's helpers: smtp-server-form.ts; state: smtp-server-state.ts.
 */

export interface SmtpServersRouterOptions {
  /** Data for views/partials/smtp-oauth.eta (Authorize / Re-authorize / Disconnect and grant state). */
  oauthPanel?: (server: SmtpServerView) => Promise<unknown>;
  /** The OAuth grant state of a server (null: none), to refuse a host change while authorized. */
  oauthStatus?: (serverId: string) => Promise<string | null>;
  /** Grant and integration facts of an oauth2 server, for its state. */
  oauthFacts?: (server: SmtpServerView) => Promise<OAuthFacts>;
  /**
   * OAuth 2.0 integrations to choose from on the form: the first ones (a form never lists thousands) and `chosen`,
   * the one the form names, wherever it is; `more` when there are others (the form then takes an id, offering these).
   */
  integrations?: (chosen: string | null) => Promise<{ choices: { id: string; name: string }[]; more: boolean }>;
  /** Warnings shown above the list before mail stops: grants to re-authorize, client secrets expiring, Google apps in testing. */
  warnings?: () => Promise<{ kind: string; target: string; message: string }[]>;
}

export const outgoingBody = z.strictObject({ enabled: z.boolean() });
const switchForm = z.object({
  enabled: z.enum(['true', 'false'], 'expected true or false'),
  confirmed: z.string().optional(),
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

/** Only the fields the schema knows: the test recipient belongs to the test buttons, not to the server. */
function serverFields(body: Record<string, unknown>): Record<string, unknown> {
  const { testRecipient: _r, ...rest } = body;
  return rest;
}

function validationDetails(err: unknown): ErrorDetail[] | null {
  return isAppError(err) && err.code === 'validation_failed' ? err.details : null;
}

/** Required-field messages first, then the schema's, one per field: every problem in one round. */
function mergeDetails(missing: ErrorDetail[], parsed: ErrorDetail[]): ErrorDetail[] {
  const seen = new Set(missing.map((d) => d.field));
  return [...missing, ...parsed.filter((d) => !seen.has(d.field))];
}

function tryParse<S extends z.ZodType>(
  schema: S,
  body: unknown,
): { value: z.output<S> | null; details: ErrorDetail[] } {
  try {
    return { value: parseInput(schema, body), details: [] };
  } catch (err) {
    const details = validationDetails(err);
    if (!details) throw err;
    return { value: null, details };
  }
}

export interface SmtpServersRouterDeps {
  config: Pick<
    Config,
    'MAILGATE_SMTP_HOST' | 'MAILGATE_SMTP_LOCALHOST' | 'MAILGATE_SMTP_PORT' | 'MAILGATE_FROM_FORMAT'
  >;
  audit: Pick<AuditLog, 'record'>;
  mail: Pick<MailServices, 'servers' | 'queue' | 'transport' | 'test'>;
  lastTests: LastTests;
}

interface ShowExtra {
  form?: Record<string, unknown>;
  errors?: ErrorDetail[];
  notice?: string;
  retypePassword?: boolean;
}

export function smtpServersRouter(
  web: WebContext,
  deps: SmtpServersRouterDeps,
  options: SmtpServersRouterOptions = {},
): Router {
  const { auth, eta } = web;
  const mail = deps.mail;
  const router = Router();
  const stateDeps = { lastTests: deps.lastTests, oauthFacts: options.oauthFacts };

  const canConfigure = (res: Response) => {
    const a = (res.locals as { actor?: Actor }).actor;
    return a?.type === 'user' && a.role === 'sysadmin';
  };
  const tr = (res: Response) => res.locals.t as Translate;
  const auditCtx = (req: Request, res: Response) => ({ actor: actorOf(res), ...(req.ip ? { ip: req.ip } : {}) });
  const sendingEnabled = async () => mail.servers.sendingEnabled();

  /** Tokens are sent to the server's host: a new host would receive a mailbox's live access token. */
  async function refuseHostChangeWhileAuthorized(id: string, host: string | undefined): Promise<void> {
    if (host === undefined || !options.oauthStatus) return;
    if (host === (await mail.servers.get(id)).host || (await options.oauthStatus(id)) === null) return;
    const message =
      'this server holds an authorized mailbox: press Disconnect before changing the host, then Authorize again (its tokens never go to another host)';
    throw new AppError('validation_failed', { message: `host: ${message}`, details: [{ field: 'host', message }] });
  }

  /**
   * The rules between fields (TLS before credentials, a password for a new host…), checked on the same post as
   * blank and malformed fields, so every problem shows in one round; the save itself checks them again.
   */
  async function crossFieldProblems(body: Record<string, unknown>, id: string | null): Promise<ErrorDetail[]> {
    const lenient = tryParse(testServerInput, { ...serverFields(body), id: undefined, version: undefined });
    if (!lenient.value) return [];
    const input =
      body.changePassword === 'on' || id === null ? lenient.value : { ...lenient.value, password: undefined };
    try {
      const stored = id
        ? { view: await mail.servers.get(id), password: (await mail.servers.resolve(id))?.password ?? null }
        : null;
      draftServer(input, stored, deps.config);
      return [];
    } catch (err) {
      // Whether a mailbox is authorized is the save's question (refuseHostChangeWhileAuthorized), not this one's.
      return (validationDetails(err) ?? []).filter((d) => !/tokens never go/.test(d.message));
    }
  }

  function chosenIntegration(form: object): string | null {
    const id = (form as { oauthIntegrationId?: unknown }).oauthIntegrationId;
    return typeof id === 'string' && id ? id : null;
  }

  async function integrationChoices(form: object) {
    const found = options.integrations ? await options.integrations(chosenIntegration(form)) : null;
    return { integrations: found?.choices ?? null, integrationsMore: found?.more ?? false };
  }

  async function showServer(
    req: Request,
    res: Response,
    server: SmtpServerView | null,
    extra: ShowExtra = {},
    status = 200,
  ) {
    const t = tr(res);
    // A test posted without JavaScript comes back here once (post/redirect/get), with the values it tested.
    const stash = req.session?.serverTest;
    const fromStash = stash && stash.serverId === (server?.id ?? null) && status === 200 && !extra.form ? stash : null;
    if (stash) delete req.session.serverTest;
    const form =
      extra.form ??
      fromStash?.form ??
      (server ? { ...server } : { protocol: 'smtp', authMethod: 'none', serviceProvider: 'custom' });
    renderPage(
      res,
      eta,
      'smtp-server',
      {
        title: server ? t('servers.editTitle', { name: server.name }) : t('servers.addTitle'),
        server,
        form,
        errors: fieldErrors(t, extra.errors ?? []),
        notice: extra.notice ?? null,
        retypePassword: extra.retypePassword ?? fromStash?.retypePassword ?? false,
        test: fromStash?.test ?? null,
        options: formOptions(t),
        canConfigure: canConfigure(res),
        state: server ? await serverState(stateDeps, server, await sendingEnabled(), t) : null,
        ...(await integrationChoices(form)),
        // The OAuth area renders its panel (views/partials/smtp-oauth.eta) from this, when wired.
        oauth: server && server.authMethod === 'oauth2' && options.oauthPanel ? await options.oauthPanel(server) : null,
      },
      status,
    );
  }

  // ------------------------------------------------------------------------------------------ pages

  router.get('/admin/smtp-servers', auth.page('admin'), async (req, res) => {
    const t = tr(res);
    // A page of servers (in id order) and a bounded search: the page costs the same at 100 and 100,000 servers.
    const query = parseInput(serverListQuery, { ...req.query, limit: req.query.limit ?? '50' });
    const page = await mail.servers.page({ limit: query.limit, cursor: query.cursor, search: query.search });
    const servers = page.items;
    const enabled = await sendingEnabled();
    const withState = await Promise.all(
      servers.map(async (s) => ({ ...s, state: await serverState(stateDeps, s, enabled, t) })),
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
      title: t('servers.title'),
      servers: withState,
      search: query.search ?? '',
      nextHref: page.next
        ? `/admin/smtp-servers?${new URLSearchParams({ ...(query.search ? { search: query.search } : {}), cursor: page.next }).toString()}`
        : null,
      firstHref: query.cursor
        ? `/admin/smtp-servers${query.search ? `?search=${encodeURIComponent(query.search)}` : ''}`
        : null,
      warnings: options.warnings ? await options.warnings() : [],
      settings,
      sendingEnabled: enabled,
      overrides,
      canConfigure: canConfigure(res),
    });
  });

  router.post('/admin/smtp-servers/outgoing', auth.page('admin'), async (req, res) => {
    const t = tr(res);
    const { enabled } = parseInput(switchForm, req.body);
    if (
      enabled === 'false' &&
      !confirmed(req, res, eta, {
        title: t('servers.outgoing.confirmTitle'),
        question: t('servers.outgoing.confirmQuestion'),
        consequence: t('servers.outgoing.confirmConsequence'),
        cancelHref: '/admin/smtp-servers',
      })
    )
      return;
    await mail.servers.setOutgoingEnabled(enabled === 'true', auditCtx(req, res));
    // Disabling is not a success to celebrate: it stops mail, so it is announced as a warning.
    if (enabled === 'true') setFlash(req, 'ok', t('servers.outgoing.enabledFlash'));
    else setFlash(req, 'warning', t('servers.outgoing.disabledFlash'));
    res.redirect(303, '/admin/smtp-servers');
  });

  router.get('/admin/smtp-servers/new', auth.page('sysadmin'), async (req, res) => {
    await showServer(req, res, null);
  });

  router.post('/admin/smtp-servers', auth.page('sysadmin'), async (req, res) => {
    const t = tr(res);
    const body = withoutCsrf(req.body);
    const preset = presetToFill(body);
    if (preset) {
      const provider = t(`servers.provider.${String(body.serviceProvider)}`);
      const notice = t('servers.presetFilled', { provider, button: t('servers.button.add') });
      await showServer(req, res, null, {
        form: { ...formValues(body), ...preset },
        notice,
        retypePassword: typedPassword(body),
      });
      return;
    }
    const parsed = tryParse(createServerInput, serverFields(body));
    let details = mergeDetails(missingFields(body, { creating: true }), parsed.details);
    if (details.length) details = mergeDetails(details, await crossFieldProblems(body, null));
    if (!details.length && parsed.value) {
      try {
        const created = await mail.servers.create(parsed.value, auditCtx(req, res));
        setFlash(req, 'ok', t('servers.added', { name: created.name }));
        res.redirect(303, `/admin/smtp-servers/${created.id}`);
        return;
      } catch (err) {
        details = validationDetails(err) ?? [];
        if (!details.length) throw err;
      }
    }
    await showServer(
      req,
      res,
      null,
      { form: formValues(body), errors: details, retypePassword: typedPassword(body) },
      400,
    );
  });

  router.get('/admin/smtp-servers/:id', auth.page('admin'), async (req, res) => {
    await showServer(req, res, await mail.servers.get(parseId(req)));
  });

  router.post('/admin/smtp-servers/:id', auth.page('sysadmin'), async (req, res) => {
    const t = tr(res);
    const id = parseId(req);
    const body = formUpdateBody(req.body);
    const parsed = tryParse(updateServerInput, serverFields(body));
    let details = mergeDetails(missingFields(body, { creating: false }), parsed.details);
    if (details.length) details = mergeDetails(details, await crossFieldProblems(body, id));
    if (!details.length && parsed.value) {
      try {
        await refuseHostChangeWhileAuthorized(id, parsed.value.host);
        const before = await mail.servers.resolve(id);
        const updated = await mail.servers.update(id, parsed.value, auditCtx(req, res));
        await forgetStaleTest(mail, deps.lastTests, id, before);
        setFlash(req, 'ok', t('servers.updated', { name: updated.name }));
        res.redirect(303, `/admin/smtp-servers/${id}`);
        return;
      } catch (err) {
        details = validationDetails(err) ?? [];
        if (!details.length) throw err;
      }
    }
    const server = await mail.servers.get(id);
    await showServer(
      req,
      res,
      server,
      { form: formValues(body), errors: details, retypePassword: typedPassword(body) },
      400,
    );
  });

  registerServerTestRoutes(router, web, {
    config: deps.config,
    audit: deps.audit,
    mail,
    lastTests: deps.lastTests,
    showFormErrors: async (req, res, id, errors) => {
      const body = withoutCsrf(req.body);
      const server = id ? await mail.servers.get(id) : null;
      await showServer(req, res, server, { form: formValues(body), errors, retypePassword: typedPassword(body) }, 400);
    },
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
    setFlash(req, 'ok', tr(res)('servers.resumed', { count: released }));
    res.redirect(303, `/admin/smtp-servers/${id}`);
  });

  router.post('/admin/smtp-servers/:id/delete', auth.page('sysadmin'), async (req, res) => {
    const t = tr(res);
    const id = parseId(req);
    const server = await mail.servers.get(id);
    const text = {
      title: t('servers.delete.confirmTitle'),
      question: t('servers.delete.confirmQuestion', { name: server.name }),
      consequence: t('servers.delete.confirmConsequence'),
      cancelHref: `/admin/smtp-servers/${encodeURIComponent(id)}`,
    };
    if (!confirmed(req, res, eta, text)) return;
    await mail.servers.remove(id, auditCtx(req, res));
    await deps.lastTests.clear(id);
    setFlash(req, 'ok', t('servers.deleted'));
    res.redirect(303, '/admin/smtp-servers');
  });

  registerServerApiRoutes(router, web, {
    ...deps,
    stateDeps,
    refuseHostChangeWhileAuthorized,
    resume,
    auditCtx,
  });

  return router;
}
