import type { Request, Response, Router } from 'express';
import type { AuditLog } from '../admin/audit.js';
import type { Config } from '../config.js';
import { isAppError, type ErrorDetail } from '../errors.js';
import type { Translate } from '../i18n/i18n.js';
import { composeMessage } from '../mail/compose.js';
import type { ResolvedServer } from '../mail/servers.js';
import { draftServer } from '../mail/servers/draft.js';
import type { LastTests } from '../mail/servers/last-test.js';
import { invalid, testServerInput, type TestServerInput } from '../mail/servers/validation.js';
import type { MailServices } from '../mail/service.js';
import { sendTestEmail, testConnection } from '../mail/verify.js';
import { actorOf } from './auth.js';
import type { WebContext } from './context.js';
import { languageOf, translatorFor } from './language.js';
import { fieldErrors, formValues, typedPassword } from './smtp-server-form.js';
import { parseId, parseInput } from './validate.js';

/**
 * Test connection and Send test email on the values in the form, unsaved: `POST /api/v1/smtp-servers/test` and
 * `/test-email` (JSON), and the form's buttons (`formaction`). Without JavaScript the form post stores the
 * result and the typed values (never the password) in the session and redirects back to the form (post/
 * redirect/get); with JavaScript (public/server-form.js) the same post asks for JSON and gets the rendered
 * result to show next to the buttons. A test of a stored server's own values is remembered for the list.
 */

declare module 'express-session' {
  interface SessionData {
    /** The last form test, shown once by the form page it came from. */
    serverTest?: { serverId: string | null; form: Record<string, unknown>; test: TestView; retypePassword: boolean };
  }
}

export interface TestView {
  kind: 'connection' | 'email';
  ok: boolean;
  summary: string;
  code?: string;
  error?: string;
  hint?: string;
  transcript?: string[];
}

export interface ServerTestsDeps {
  config: Pick<
    Config,
    'MAILGATE_SMTP_HOST' | 'MAILGATE_SMTP_LOCALHOST' | 'MAILGATE_SMTP_PORT' | 'MAILGATE_FROM_FORMAT'
  >;
  audit: Pick<AuditLog, 'record'>;
  mail: Pick<MailServices, 'servers' | 'transport'>;
  lastTests: LastTests;
  /** Renders the form with errors (a failed test post without JavaScript), status 400. */
  showFormErrors: (req: Request, res: Response, serverId: string | null, errors: ErrorDetail[]) => Promise<void>;
}

const CONNECTION_FIELDS = [
  'host',
  'port',
  'protocol',
  'tls',
  'authMethod',
  'username',
  'password',
  'oauthIntegrationId',
] as const;

function sameConnection(a: ResolvedServer, b: ResolvedServer): boolean {
  return CONNECTION_FIELDS.every((k) => a[k] === b[k]) && a.fromAddress === b.fromAddress;
}

/** After a save: a remembered test of other connection values no longer says anything about the server. */
export async function forgetStaleTest(
  mail: Pick<MailServices, 'servers'>,
  lastTests: LastTests,
  id: string,
  before: ResolvedServer | null,
): Promise<void> {
  const after = await mail.servers.resolve(id);
  if (!before || !after || !sameConnection(before, after)) await lastTests.clear(id);
}

/** A hint in the reader's language: English keeps the diagnosis's own (it names the reply); others by code. */
/** The JSON answer of a Test connection, saved or not: the hint in the reader's language, the code in English. */
export function testResultJson(
  req: Request,
  r: {
    ok: boolean;
    durationMs: number;
    transcript: string[];
    error?: string;
    code?: string;
    hint?: string;
    responseCode?: number;
  },
  where: string,
) {
  return {
    ok: r.ok,
    durationMs: r.durationMs,
    transcript: r.transcript,
    ...(r.ok
      ? {}
      : {
          error: r.error,
          code: r.code,
          hint: hintFor(translatorFor(req), languageOf(req), r, where),
          ...(r.responseCode ? { responseCode: r.responseCode } : {}),
        }),
  };
}

export function hintFor(t: Translate, lang: string, r: { code?: string; hint?: string }, where: string): string {
  if (!r.code) return r.hint ?? '';
  if (lang === 'en' && r.hint) return r.hint;
  return t(`diagnosis.${r.code}`, { where });
}

export function registerServerTestRoutes(router: Router, { auth, eta }: WebContext, deps: ServerTestsDeps): void {
  const { mail } = deps;

  async function draftFor(
    body: unknown,
    id: string | null,
  ): Promise<{ server: ResolvedServer; input: TestServerInput }> {
    const input = parseInput(testServerInput, body ?? {});
    const storedId = id ?? input.id ?? null;
    let stored = null;
    if (storedId) {
      const view = await mail.servers.get(storedId);
      const resolved = await mail.servers.resolve(storedId);
      stored = { view, password: resolved?.password ?? null };
    }
    return { server: draftServer(input, stored, deps.config), input };
  }

  async function remember(
    id: string | null,
    server: ResolvedServer,
    ok: boolean,
    kind: 'connection' | 'email',
    code?: string,
  ) {
    if (!id) return;
    const stored = await mail.servers.resolve(id);
    // Only a test of what is saved says something about the saved server.
    if (stored && sameConnection(stored, server)) await deps.lastTests.record(id, { ok, kind, code: code ?? null });
  }

  async function audited(req: Request, res: Response, id: string | null, kind: string, ok: boolean, code?: string) {
    await deps.audit.record({
      actor: actorOf(res),
      action: kind === 'email' ? 'smtp_server.test_email' : 'smtp_server.test',
      target: `smtp_server:${id ?? 'unsaved'}`,
      outcome: ok ? 'success' : 'failure',
      ...(req.ip ? { ip: req.ip } : {}),
      detail: { unsaved: true, ...(code ? { code } : {}) },
    });
  }

  async function runConnection(req: Request, res: Response, body: unknown, id: string | null) {
    const { server } = await draftFor(body, id);
    const r = await testConnection(mail.transport, server);
    await remember(id, server, r.ok, 'connection', r.code);
    await audited(req, res, id, 'connection', r.ok, r.code);
    return { r, server };
  }

  async function runEmail(req: Request, res: Response, body: unknown, id: string | null, t: Translate) {
    const { server, input } = await draftFor(body, id);
    const missing: ErrorDetail[] = [];
    if (!server.fromAddress) missing.push({ field: 'fromAddress', message: 'required' });
    if (!input.testRecipient) missing.push({ field: 'testRecipient', message: 'required' });
    if (missing.length) throw invalid(missing);
    const to = input.testRecipient!;
    const message = composeMessage(
      { to: [to], subject: t('servers.test.emailSubject'), text: t('servers.test.emailText', { name: server.name }) },
      server,
      deps.config.MAILGATE_FROM_FORMAT,
    );
    const r = await sendTestEmail(mail.transport, server, message);
    await remember(id, server, r.ok, 'email', r.code);
    await audited(req, res, id, 'email', r.ok, r.code);
    return { r, server, to };
  }

  // ------------------------------------------------------------------------------------------ JSON API

  router.post('/api/v1/smtp-servers/test', auth.api('admin'), async (req, res) => {
    const { r, server } = await runConnection(req, res, req.body, null);
    res.json(testResultJson(req, r, `${server.host}:${server.port}`));
  });

  router.post('/api/v1/smtp-servers/test-email', auth.api('admin'), async (req, res) => {
    const t = translatorFor(req);
    const { r, server } = await runEmail(req, res, req.body, null, t);
    res.json({
      ok: r.ok,
      ...(r.ok
        ? { messageId: r.messageId }
        : { error: r.error, code: r.code, hint: hintFor(t, languageOf(req), r, `${server.host}:${server.port}`) }),
    });
  });

  // ------------------------------------------------------------------------------------------ form buttons

  function view(
    res: Response,
    kind: 'connection' | 'email',
    outcome: Awaited<ReturnType<typeof runConnection>> | Awaited<ReturnType<typeof runEmail>>,
  ): TestView {
    const t = res.locals.t as Translate;
    const lang = String(res.locals.lang ?? 'en');
    const { r, server } = outcome;
    const where = `${server.host}:${server.port}`;
    const failure = r.ok
      ? {}
      : { code: r.code ?? 'send_failed', error: r.error ?? '', hint: hintFor(t, lang, r, where) };
    if (kind === 'email') {
      const to = 'to' in outcome ? outcome.to : '';
      const messageId = 'messageId' in r ? (r.messageId ?? '') : '';
      return {
        kind,
        ok: r.ok,
        summary: r.ok
          ? t('servers.test.emailSent', { to, messageId })
          : t('servers.test.emailFailed', { code: r.code ?? '' }),
        ...failure,
      };
    }
    const steps = [
      t('servers.test.step.connected'),
      ...(server.protocol === 'smtps' || server.tls ? [t('servers.test.step.tls')] : []),
      ...(server.authMethod !== 'none' ? [t('servers.test.step.auth', { method: server.authMethod })] : []),
    ];
    return {
      kind,
      ok: r.ok,
      summary: r.ok
        ? t('servers.test.succeeded', { steps: steps.join(', '), ms: r.durationMs })
        : t('servers.test.failed', { ms: r.durationMs, code: r.code ?? '' }),
      ...failure,
      transcript: 'transcript' in r ? r.transcript : [],
    };
  }

  const wantsJson = (req: Request) => req.get('accept')?.startsWith('application/json') === true;

  function formPost(kind: 'connection' | 'email', idOf: (req: Request) => string | null) {
    return async (req: Request, res: Response) => {
      const id = idOf(req);
      const body = { ...(req.body as Record<string, unknown>) };
      if (id) body.id = undefined;
      const page = id ? `/admin/smtp-servers/${encodeURIComponent(id)}` : '/admin/smtp-servers/new';
      let test: TestView;
      try {
        const outcome =
          kind === 'email'
            ? await runEmail(req, res, body, id, res.locals.t as Translate)
            : await runConnection(req, res, body, id);
        test = view(res, kind, outcome);
      } catch (err) {
        if (!isAppError(err) || err.code !== 'validation_failed') throw err;
        if (wantsJson(req)) {
          res.status(400).json({
            ok: false,
            errors: err.details,
            html: eta.render('./partials/smtp-test-result', {
              errors: fieldErrors(res.locals.t as Translate, err.details),
              test: null,
              locals: res.locals,
            }),
          });
          return;
        }
        await deps.showFormErrors(req, res, id, err.details);
        return;
      }
      if (wantsJson(req)) {
        res.json({
          ok: test.ok,
          html: eta.render('./partials/smtp-test-result', { test, errors: [], locals: res.locals }),
        });
        return;
      }
      req.session.serverTest = { serverId: id, form: formValues(body), test, retypePassword: typedPassword(body) };
      res.redirect(303, `${page}#test-connection`);
    };
  }

  // Before the routes with :id, so "new" is not taken for an id.
  router.post(
    '/admin/smtp-servers/new/test',
    auth.page('sysadmin'),
    formPost('connection', () => null),
  );
  router.post(
    '/admin/smtp-servers/new/test-email',
    auth.page('sysadmin'),
    formPost('email', () => null),
  );
  router.post(
    '/admin/smtp-servers/:id/test',
    auth.page('sysadmin'),
    formPost('connection', (req) => parseId(req)),
  );
  router.post(
    '/admin/smtp-servers/:id/test-email',
    auth.page('sysadmin'),
    formPost('email', (req) => parseId(req)),
  );
}
