import type { RequestHandler } from 'express';
import { z } from 'zod';
import { ERROR_CODES, errorBody } from '../errors.js';
import { messageInput } from '../mail/compose.js';
import { actorOf } from './auth.js';
import { toAppError } from './error-handler.js';
import { translatorFor } from './language.js';
import type { Intake } from './message-intake.js';
import { parseInput } from './validate.js';

/**
 * POST /api/v1/messages/batch: `{messages: [...]}`, each entry the body of POST /api/v1/messages, each accepted or
 * refused on its own, answered in order. The entries are queued concurrently, so their writes reach the store in
 * the same turn and go out together (one script call on Redis, one journal sync on the embedded store).
 */

export const MAX_BATCH_MESSAGES = 500;

/** What is checked of the batch as a whole; each entry is then parsed with messageInput. */
export const batchInput = z.strictObject({
  messages: z
    .array(z.unknown())
    .min(1, 'give at least one message')
    .max(MAX_BATCH_MESSAGES, `at most ${MAX_BATCH_MESSAGES} messages`),
});

/** The same request as the API documents it: the entries are messageInput. */
export const batchInputDoc = z.strictObject({
  messages: z.array(messageInput).min(1).max(MAX_BATCH_MESSAGES),
});

export const batchResult = z.union([
  z.object({ id: z.string(), status: z.string() }),
  z.object({
    error: z.object({
      code: z.string(),
      message: z.string(),
      details: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
    }),
  }),
]);

export function batchRoute(intake: Intake): RequestHandler {
  return async (req, res) => {
    const actor = actorOf(res);
    const { messages } = parseInput(batchInput, req.body ?? {});
    const t = translatorFor(req);
    const settled = await Promise.allSettled(messages.map((m) => intake(m, actor, null)));
    let accepted = 0;
    const results = settled.map((r) => {
      if (r.status === 'fulfilled') {
        accepted++;
        return { id: r.value.id, status: r.value.status };
      }
      const body = errorBody(toAppError(r.reason));
      if (body.error.message === ERROR_CODES[body.error.code].message)
        body.error.message = t(`error.${body.error.code}`);
      const { details, ...rest } = body.error;
      return { error: details.length > 0 ? { ...rest, details } : rest };
    });
    // A refused entry may say when to try again (queue full, rate); the first such answer is passed on.
    const retry = settled.find(
      (r) => r.status === 'rejected' && toAppError(r.reason).headers['Retry-After'] !== undefined,
    );
    if (retry?.status === 'rejected') res.setHeader('Retry-After', toAppError(retry.reason).headers['Retry-After']!);
    res.status(accepted > 0 ? 202 : 400).json({ results });
  };
}
