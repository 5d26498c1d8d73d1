import { Router, type Response } from 'express';
import { z } from 'zod';
import type { AuditLog } from '../admin/audit.js';
import type { LoginGuard } from '../admin/login-guard.js';
import type { SessionGeneration } from '../admin/sessions.js';
import type { Actor } from '../admin/types.js';
import type { UserService } from '../admin/users.js';
import { MIN_PASSWORD_LENGTH } from '../admin/users.js';
import { isAppError, type ErrorDetail } from '../errors.js';
import type { Clock, WebContext } from './context.js';
import type { Params, Translate } from '../i18n/i18n.js';
import { fieldErrors } from './form-errors.js';
import { renderPage } from './render.js';
import { setFlash, startUserSession, type SessionUser } from './session.js';
import { parseInput } from './validate.js';

/**
 * /account/password: a logged-in user changes their own password. The current password is checked under the
 * login limits (a stolen session must not become a way to guess it). The new password ends the user's other
 * sessions on every instance; this one carries on under a new session id.
 */

const passwordForm = z
  .object({
    currentPassword: z.string({ error: 'form.required' }).min(1, 'form.required').max(1024, 'form.tooLong'),
    newPassword: z
      .string({ error: 'form.required' })
      .min(1, 'form.required')
      .min(MIN_PASSWORD_LENGTH, 'form.tooShort')
      .max(1024, 'form.tooLong'),
    newPasswordAgain: z.string({ error: 'form.required' }).min(1, 'form.required').max(1024, 'form.tooLong'),
  })
  .refine((f) => f.newPassword === f.newPasswordAgain, {
    path: ['newPasswordAgain'],
    message: 'account.mismatch',
  });

export interface AccountRouterDeps {
  audit: Pick<AuditLog, 'record'>;
  loginGuard: Pick<LoginGuard, 'check'>;
  users: Pick<UserService, 'setPassword'>;
  sessionGeneration: Pick<SessionGeneration, 'current'>;
  clock?: Clock;
}

export function accountRouter({ auth, eta }: WebContext, deps: AccountRouterDeps): Router {
  const router = Router();
  const now = deps.clock ?? Date.now;

  function show(res: Response, errors: (ErrorDetail & { params?: Params })[] = [], status = 200): void {
    const t = res.locals.t as Translate;
    renderPage(
      res,
      eta,
      'account-password',
      {
        title: t('account.title'),
        fieldErrors: fieldErrors(t, errors, MIN_PASSWORD_LENGTH),
        minLength: MIN_PASSWORD_LENGTH,
      },
      status,
    );
  }

  router.get('/account/password', auth.page('admin'), (_req, res) => {
    show(res);
  });

  router.post('/account/password', auth.page('admin'), async (req, res) => {
    const me = res.locals.user as SessionUser;
    const actor = (res.locals as { actor: Actor }).actor;
    const ip = req.ip ?? 'unknown';
    const audit = (outcome: 'success' | 'failure', reason?: string) =>
      deps.audit.record({
        actor,
        action: 'user.password_change',
        target: `user:${me.email}`,
        outcome,
        ip,
        ...(reason ? { detail: { reason } } : {}),
      });
    let form: z.output<typeof passwordForm>;
    try {
      form = parseInput(passwordForm, req.body);
    } catch (err) {
      if (!isAppError(err)) throw err;
      show(res, err.details, 400);
      return;
    }
    const check = await deps.loginGuard.check(me.email, form.currentPassword, ip);
    if (check.outcome === 'rate_limited') {
      await audit('failure', 'rate_limited');
      res.setHeader('Retry-After', String(check.retryAfterSec));
      show(res, [{ field: 'currentPassword', message: 'account.tooMany', params: { n: check.retryAfterSec } }], 429);
      return;
    }
    if (check.outcome !== 'ok') {
      await audit('failure', 'wrong_current_password');
      show(res, [{ field: 'currentPassword', message: 'account.wrongCurrent' }], 400);
      return;
    }
    const updated = await deps.users.setPassword(me.email, form.newPassword);
    await startUserSession(req, updated, await deps.sessionGeneration.current(), now());
    await audit('success');
    setFlash(req, 'ok', (res.locals.t as Translate)('account.changed'));
    res.redirect(303, '/account/password');
  });

  return router;
}
