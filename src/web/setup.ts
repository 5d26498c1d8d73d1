import { Router, type Response } from 'express';
import { z } from 'zod';
import type { FirstAdminSetup } from '../admin/first-admin-setup.js';
import { isAppError } from '../errors.js';
import type { WebContext } from './context.js';
import { renderPage } from './render.js';
import { startUserSession } from './session.js';
import { formText, parseInput } from './validate.js';

const setupForm = z.object({
  code: formText(z.string().max(200)).optional(),
  email: formText(z.email({ error: 'enter an email address' })),
  password: z.string().min(12, 'must be at least 12 characters').max(1024),
});

/** /setup: the first sysadmin, for whoever holds the one-time code in the data folder (embedded store only). */
export function setupRouter(ctx: WebContext, setup: FirstAdminSetup): Router {
  const { deps, eta } = ctx;
  const router = Router();
  const attempts = deps.store.createRateLimiter({
    keyPrefix: 'setup_ip',
    points: 10,
    durationSec: 15 * 60,
    blockDurationSec: 15 * 60,
  });

  function show(
    res: Response,
    data: { email?: string; error?: string; details?: { field: string; message: string }[] },
    status = 200,
  ): void {
    renderPage(
      res,
      eta,
      'setup',
      {
        title: 'Set up mailgate',
        email: data.email ?? '',
        error: data.error ?? null,
        details: data.details ?? [],
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
      show(res, { error: 'Too many attempts; wait 15 minutes and try again.' }, 429);
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
        { email: typeof raw.email === 'string' ? raw.email : '', error: 'Fix the fields below.', details: err.details },
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
      show(res, { email: form.email, error: err.message, details: err.details }, err.status);
    }
  });

  return router;
}
