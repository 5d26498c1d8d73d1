import { Router, type Response } from 'express';
import { z } from 'zod';
import type { Actor } from '../admin/types.js';
import { MIN_PASSWORD_LENGTH } from '../admin/users.js';
import { isAppError, type ErrorDetail } from '../errors.js';
import type { WebContext } from './context.js';
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
    currentPassword: z.string({ error: 'enter your current password' }).min(1, 'enter your current password').max(1024),
    newPassword: z
      .string({ error: 'enter a new password' })
      .min(MIN_PASSWORD_LENGTH, `must be at least ${MIN_PASSWORD_LENGTH} characters`)
      .max(1024),
    newPasswordAgain: z.string({ error: 'repeat the new password' }).max(1024),
  })
  .refine((f) => f.newPassword === f.newPasswordAgain, {
    path: ['newPasswordAgain'],
    message: 'does not match the new password',
  });

export function accountRouter(ctx: WebContext): Router {
  const { deps, auth, eta } = ctx;
  const router = Router();
  const now = deps.clock ?? Date.now;

  function show(res: Response, errors: ErrorDetail[] = [], status = 200): void {
    renderPage(
      res,
      eta,
      'account-password',
      { title: 'Change password', errors, minLength: MIN_PASSWORD_LENGTH },
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
      show(
        res,
        [{ field: 'currentPassword', message: `too many attempts; wait ${check.retryAfterSec} second(s)` }],
        429,
      );
      return;
    }
    if (check.outcome !== 'ok') {
      await audit('failure', 'wrong_current_password');
      show(res, [{ field: 'currentPassword', message: 'is not your current password' }], 400);
      return;
    }
    const updated = await deps.users.setPassword(me.email, form.newPassword);
    await startUserSession(req, updated, await deps.sessionGeneration.current(), now());
    await audit('success');
    setFlash(req, 'ok', 'Password changed. Your other sessions have ended.');
    res.redirect(303, '/account/password');
  });

  return router;
}
