import { Router, type Response } from 'express';
import { z } from 'zod';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import type { AuditLog } from '../admin/audit.js';
import type { FirstAdminSetup } from '../admin/first-admin-setup.js';
import type { SessionGeneration } from '../admin/sessions.js';
import { MIN_PASSWORD_LENGTH } from '../admin/users.js';
import { isAppError, type ErrorDetail } from '../errors.js';
import type { Translate } from '../i18n/i18n.js';
import { fieldErrors } from './form-errors.js';
import type { Clock, WebContext } from './context.js';
import { renderPage } from './render.js';
import { startUserSession } from './session.js';
import { formText, parseInput } from './validate.js';

const setupForm = z.object({
  code: formText(z.string().max(200).optional()),
  email: formText(z.email({ error: (issue) => (issue.input === undefined ? 'form.required' : 'form.email') })),
  password: z
    .string({ error: 'form.required' })
    .min(1, 'form.required')
    .min(MIN_PASSWORD_LENGTH, 'form.tooShort')
    .max(1024, 'form.tooLong'),
});

/** /setup: the first sysadmin, for whoever holds the one-time code in the data folder (embedded store only). */
export interface SetupRouterDeps {
  setup: FirstAdminSetup;
  audit: Pick<AuditLog, 'record'>;
  sessionGeneration: Pick<SessionGeneration, 'current'>;
  /** Code attempts per address: 10 per 15 minutes (built by the caller on the store's rate limiter). */
  attempts: RateLimiterAbstract;
  clock?: Clock;
}

export function setupRouter({ eta }: WebContext, deps: SetupRouterDeps): Router {
  const { setup, attempts } = deps;
  const router = Router();

  function show(res: Response, data: { email?: string; error?: string; details?: ErrorDetail[] }, status = 200): void {
    const t = res.locals.t as Translate;
    renderPage(
      res,
      eta,
      'setup',
      {
        title: t('setup.title'),
        email: data.email ?? '',
        error: data.error ?? null,
        fieldErrors: fieldErrors(t, data.details ?? [], MIN_PASSWORD_LENGTH),
        minLength: MIN_PASSWORD_LENGTH,
        codeFile: 'first-admin-code.txt',
      },
      status,
    );
  }

  router.get('/setup', async (_req, res) => {
    if (!(await setup.isOpen())) {
      res.redirect(303, '/login');
      return;
    }
    show(res, {});
  });

  router.post('/setup', async (req, res) => {
    if (!(await setup.isOpen())) {
      res.redirect(303, '/login');
      return;
    }
    try {
      await attempts.consume(req.ip ?? 'unknown');
    } catch (err) {
      if (err instanceof Error) throw err;
      show(res, { error: (res.locals.t as Translate)('setup.tooMany') }, 429);
      return;
    }
    const raw = req.body as Record<string, unknown>;
    let form: z.output<typeof setupForm>;
    try {
      form = parseInput(setupForm, req.body);
    } catch (err) {
      if (!isAppError(err)) throw err;
      show(
        res,
        {
          email: typeof raw.email === 'string' ? raw.email : '',
          error: (res.locals.t as Translate)('setup.fix'),
          details: err.details,
        },
        400,
      );
      return;
    }
    try {
      const user = await setup.complete(form.code ?? '', form.email, form.password);
      await deps.audit.record({
        actor: { type: 'system', id: 'setup' },
        action: 'user.create',
        target: `user:${user.email}`,
        outcome: 'success',
        ip: req.ip,
        detail: { role: 'sysadmin', source: 'setup page' },
      });
      await startUserSession(req, user, await deps.sessionGeneration.current(), (deps.clock ?? Date.now)());
      res.redirect(303, '/admin/smtp-servers');
    } catch (err) {
      if (!isAppError(err)) throw err;
      await deps.audit.record({
        actor: { type: 'system', id: 'setup' },
        action: 'user.create',
        target: `user:${form.email}`,
        outcome: 'failure',
        ip: req.ip,
        detail: { reason: err.code },
      });
      const t = res.locals.t as Translate;
      const error =
        err.code === 'forbidden'
          ? t('setup.wrongCode')
          : err.code === 'already_exists'
            ? t('setup.exists')
            : err.details.length
              ? t('setup.fix')
              : t(`error.${err.code}`);
      const details = err.code === 'forbidden' ? [{ field: 'code', message: 'form.invalid' }] : err.details;
      show(res, { email: form.email, error, details }, err.status);
    }
  });

  return router;
}
