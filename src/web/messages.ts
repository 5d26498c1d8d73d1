import { Router } from 'express';
import { z } from 'zod';
import { AppError } from '../errors.js';
import { fromAllowed, serverForKey } from '../admin/key-policy.js';
import { messageInput } from '../mail/compose.js';
import { actorOf } from './auth.js';
import type { WebContext } from './context.js';
import { parseId, parseInput } from './validate.js';

/**
 * The send API. POST validates strictly (nothing is queued on any error), stores the message durably and
 * answers 202 with its id; GET shows its status, attempts, last error with a hint, and per-recipient results.
 * An Idempotency-Key makes a retried POST return the same message instead of queueing a second one.
 */

const idempotencyKey = z.string().regex(/^[\x21-\x7e]{1,200}$/, 'expected 1-200 printable ASCII characters');

export function messagesRouter(ctx: WebContext): Router {
  const { deps, auth } = ctx;
  const router = Router();

  router.post('/api/v1/messages', auth.api('send'), async (req, res) => {
    const actor = actorOf(res);
    const parsed = parseInput(messageInput, req.body ?? {});
    const header = req.get('idempotency-key');
    const key = header === undefined ? null : parseInput(idempotencyKey, header);
    const policy = actor.type === 'api_key' ? actor.policy : undefined;
    const serverId = serverForKey(policy, parsed.serverId);
    const input = serverId === undefined ? parsed : { ...parsed, serverId };
    if (policy?.allowedFrom) {
      // The header From of the JSON API is always the server's fromAddress.
      const server = await deps.mail.servers.resolve(serverId ?? (await deps.mail.servers.defaultServerId()) ?? '');
      if (server && !fromAllowed(policy, server.fromAddress)) {
        throw new AppError('forbidden', {
          message: `This API key may not send as ${server.fromAddress}.`,
          details: [{ field: 'serverId', message: 'the server sends as an address the key may not use' }],
        });
      }
    }
    await deps.keyRates.consume(actor.id, policy);
    const r = await deps.mail.queue.enqueue(input, { apiKeyId: actor.id, idempotencyKey: key });
    if (!r.created) res.setHeader('Idempotent-Replayed', 'true');
    res.status(202).location(`/api/v1/messages/${r.id}`).json({ id: r.id, status: r.status });
  });

  router.get('/api/v1/messages/:id', auth.api('send'), async (req, res) => {
    const actor = actorOf(res);
    const message = await deps.mail.queue.get(parseId(req));
    // A send-only key sees its own messages; an admin key sees all.
    const admin = actor.type === 'api_key' && actor.scopes.includes('admin');
    if (!admin && message.apiKeyId !== actor.id)
      throw new AppError('not_found', { message: `No message ${message.id}.` });
    res.json(message);
  });

  return router;
}
