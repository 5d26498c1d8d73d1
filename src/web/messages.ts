import { Router } from 'express';
import { z } from 'zod';
import { AppError } from '../errors.js';
import { actorOf } from './auth.js';
import type { WebContext } from './context.js';
import { diagnosisHint } from './hints.js';
import { languageOf, translatorFor } from './language.js';
import { SEND_PATH, createIntake, sendOne, type IntakeDeps } from './message-intake.js';
import { batchRoute } from './messages-batch.js';
import { pageQuery } from './pagination.js';
import { parseId, parseInput } from './validate.js';

/**
 * The send API. POST validates strictly (nothing is queued on any error), stores the message durably and
 * answers 202 with its id; GET shows its status, attempts, last error with a hint, and per-recipient results.
 * An Idempotency-Key makes a retried POST return the same message instead of queueing a second one.
 * POST /api/v1/messages/batch queues up to 500 messages, each accepted or refused on its own.
 */

export type MessagesRouterDeps = IntakeDeps;

const messagesQuery = pageQuery.extend({
  status: z.enum(['queued', 'sending', 'sent', 'deferred', 'held', 'failed']).optional(),
  serverId: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/, 'not a server id')
    .optional(),
});

export function messagesRouter({ auth }: WebContext, deps: MessagesRouterDeps): Router {
  const router = Router();
  const intake = createIntake(deps);

  router.post('/api/v1/messages/batch', auth.api('send'), batchRoute(intake));

  // src/web/send-fast-path.ts answers most of these before express sees them, with the same pieces.
  router.post(SEND_PATH, auth.api('send'), async (req, res) => {
    const answer = await sendOne(intake, req.body, actorOf(res), req.get('idempotency-key'));
    if (answer.replayed) res.setHeader('Idempotent-Replayed', 'true');
    res.status(202).location(answer.location).json(answer.json);
  });

  // The queue as a list (admin keys): newest first, filtered by status and server, a page at a time.
  router.get('/api/v1/messages', auth.api('admin'), async (req, res) => {
    const q = parseInput(messagesQuery, req.query);
    const page = await deps.mail.queue.browse({
      status: q.status,
      serverId: q.serverId,
      cursor: q.cursor,
      limit: q.limit,
    });
    res.json({ items: page.items, ...(page.next ? { next: page.next } : {}) });
  });

  router.get('/api/v1/messages/:id', auth.api('send'), async (req, res) => {
    const actor = actorOf(res);
    const message = await deps.mail.queue.get(parseId(req));
    // A send-only key sees its own messages; an admin key sees all.
    const admin = actor.type === 'api_key' && actor.scopes.includes('admin');
    if (!admin && message.apiKeyId !== actor.id)
      throw new AppError('not_found', { message: `No message ${message.id}.` });
    // The hint follows Accept-Language like error messages do; the code stays English.
    res.vary('Accept-Language');
    const lang = languageOf(req);
    const e = message.lastError;
    const hint = lang !== 'en' && e?.hint ? diagnosisHint(translatorFor(req), lang, e.code, e.hint) : null;
    res.json(hint && e ? { ...message, lastError: { ...e, hint } } : message);
  });

  return router;
}
