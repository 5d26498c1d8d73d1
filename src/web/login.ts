import { Router, type Response } from 'express';
import { z } from 'zod';
import type { AuditLog } from '../admin/audit.js';
import type { LoginGuard } from '../admin/login-guard.js';
import type { SessionGeneration } from '../admin/sessions.js';
import type { Actor } from '../admin/types.js';
import type { Config } from '../config.js';
import { normalizeEmail } from '../admin/users.js';
import { safeNextPath } from './auth.js';
import type { Clock, WebContext } from './context.js';
import type { Translate } from '../i18n/i18n.js';
import { renderPage } from './render.js';
import { endUserSession, startUserSession } from './session.js';
import { formText, parseInput } from './validate.js';

/**
 * /login and /logout. Passwords are checked by the LoginGuard (limits per address and per account, counted
 * before the check, shared across instances on Redis); both outcomes are audited. The error message never
 * says whether the email exists.
 */

const loginForm = z.object({
  email: formText(z.string().max(254)).optional(),
  password: z.string().max(1024).optional(),
  next: z.string().optional(),
});

/** Who tried to log in, before anyone is authenticated; the entry's `ip` says from where. */
const ANONYMOUS: Actor = { type: 'system', id: 'anonymous' };

export interface LoginRouterDeps {
  config: Config;
  audit: Pick<AuditLog, 'record'>;
  loginGuard: Pick<LoginGuard, 'check'>;
  sessionGeneration: Pick<SessionGeneration, 'current' | 'revokeAll'>;
  clock?: Clock;
}

export function loginRouter(web: WebContext, deps: LoginRouterDeps): Router {
  const { eta } = web;
  const router = Router();
  const now = deps.clock ?? Date.now;

  function showLogin(
    res: Response,
    data: { email?: string; next?: string | null; error?: string },
    status = 200,
  ): void {
    renderPage(
      res,
      eta,
      'login',
      {
        title: (res.locals.t as Translate)('login.title'),
        email: data.email ?? '',
        next: data.next ?? '',
        error: data.error ?? null,
      },
      status,
    );
  }

  router.get('/', (_req, res) => {
    res.redirect(303, res.locals.user ? '/admin/smtp-servers' : '/login');
  });

  router.get('/login', (req, res) => {
    const next = safeNextPath(req.query.next);
    if (res.locals.user) {
      res.redirect(303, next ?? '/admin/smtp-servers');
      return;
    }
    showLogin(res, { next });
  });

  router.post('/login', async (req, res) => {
    const t = res.locals.t as Translate;
    const form = parseInput(loginForm, req.body);
    const next = safeNextPath(form.next);
    const email = normalizeEmail(form.email ?? '');
    const password = form.password ?? '';
    const ip = req.ip ?? 'unknown';
    // What was typed as the email goes into the audit log, which admins read: a password typed into the
    // wrong field must not end up there, so anything that is not an address is recorded as such.
    const auditTarget = z.email().safeParse(email).success ? `user:${email}` : 'user:(not an email address)';
    if (!email || !password) {
      showLogin(res, { email, next, error: t('login.missing') }, 400);
      return;
    }

    const check = await deps.loginGuard.check(email, password, ip);
    if (check.outcome === 'rate_limited') {
      await deps.audit.record({
        actor: ANONYMOUS,
        action: 'auth.login',
        target: auditTarget,
        outcome: 'failure',
        ip,
        detail: { reason: 'rate_limited', limit: check.limit },
      });
      res.setHeader('Retry-After', String(check.retryAfterSec));
      showLogin(res, { email, next, error: t('login.tooMany', { wait: waitText(t, check.retryAfterSec) }) }, 429);
      return;
    }
    if (check.outcome === 'invalid_credentials') {
      await deps.audit.record({
        actor: ANONYMOUS,
        action: 'auth.login',
        target: auditTarget,
        outcome: 'failure',
        ip,
        detail: { reason: 'invalid_credentials' },
      });
      showLogin(res, { email, next, error: t('error.invalid_credentials') }, 401);
      return;
    }

    const { user } = check;
    await startUserSession(req, user, await deps.sessionGeneration.current(), now());
    await deps.audit.record({
      actor: { type: 'user', id: user.id, email: user.email, role: user.role },
      action: 'auth.login',
      target: `user:${user.email}`,
      outcome: 'success',
      ip,
    });
    res.redirect(303, next ?? '/admin/smtp-servers');
  });

  router.post('/logout', async (req, res) => {
    const actor = (res.locals as { actor?: Actor }).actor;
    if (actor)
      await deps.audit.record({
        actor,
        action: 'auth.logout',
        target: `user:${actor.type === 'user' ? actor.email : actor.id}`,
        outcome: 'success',
        ip: req.ip,
      });
    await endUserSession(req, res, deps.config);
    res.redirect(303, '/login');
  });

  router.post('/admin/sessions/revoke-all', web.auth.page('sysadmin'), async (req, res) => {
    const actor = (res.locals as { actor: Actor }).actor;
    await deps.sessionGeneration.revokeAll(actor, req.ip);
    await endUserSession(req, res, deps.config);
    res.redirect(303, '/login');
  });

  return router;
}

function waitText(t: Translate, seconds: number): string {
  return seconds < 120
    ? t('login.waitSeconds', { n: seconds })
    : t('login.waitMinutes', { n: Math.ceil(seconds / 60) });
}
