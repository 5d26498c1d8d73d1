import { setImmediate as nextTurn } from 'node:timers/promises';
import express, { type RequestHandler } from 'express';
import { z } from 'zod';
import { fromAllowed, serverForKey, type KeyRateLimits } from '../admin/key-policy.js';
import type { Actor } from '../admin/types.js';
import { AppError } from '../errors.js';
import { encodedMessageSize } from '../mail/message-size.js';
import { messageInput, withTextPart, type MessageInput } from '../mail/compose.js';
import type { MailServices } from '../mail/service.js';
import type { MessageStatus } from '../mail/queue.js';
import { jsonBody } from './json-body.js';
import { parseInput } from './validate.js';

/**
 * One message coming in through the JSON API, alone or in a batch: validated, held to the key's policy and to
 * MAILGATE_MAX_MESSAGE_BYTES, counted against the key's rate, then queued. Every refusal happens before anything is
 * stored.
 */

export interface IntakeLimits {
  /** MAILGATE_MAX_MESSAGE_BYTES: the MIME message as it will be sent. */
  maxMessageBytes: number;
  /** MAILGATE_MAX_BATCH_BYTES: one batch request, whole. */
  maxBatchBytes: number;
}

export interface IntakeDeps {
  mail: Pick<MailServices, 'queue' | 'servers'>;
  keyRates: Pick<KeyRateLimits, 'consume'>;
  limits: IntakeLimits;
}

export interface Accepted {
  id: string;
  status: MessageStatus;
  created: boolean;
}

export type Intake = (body: unknown, actor: Actor, idempotencyKey: string | null) => Promise<Accepted>;

/** Where one message is sent (POST) and the queue is listed (GET). */
export const SEND_PATH = '/api/v1/messages';

export const idempotencyKey = z.string().regex(/^[\x21-\x7e]{1,200}$/, 'expected 1-200 printable ASCII characters');

/** The answer to one message accepted: 202 with its id and status, where to read it, whether it was a replay. */
export interface SendAnswer {
  location: string;
  replayed: boolean;
  json: { id: string; status: MessageStatus };
}

/** One message of `POST /api/v1/messages`, its Idempotency-Key header as given (checked here). */
export async function sendOne(
  intake: Intake,
  body: unknown,
  actor: Actor,
  idempotencyHeader: string | undefined,
): Promise<SendAnswer> {
  const key = idempotencyHeader === undefined ? null : parseInput(idempotencyKey, idempotencyHeader);
  const r = await intake(body, actor, key);
  return { location: `${SEND_PATH}/${r.id}`, replayed: !r.created, json: { id: r.id, status: r.status } };
}

/** Messages larger than this give other requests a turn between being checked and being stored. */
const YIELD_ABOVE_BYTES = 1024 * 1024;

export function createIntake(deps: IntakeDeps): Intake {
  async function checkFrom(input: MessageInput, actor: Actor): Promise<void> {
    const policy = actor.type === 'api_key' ? actor.policy : undefined;
    if (!policy?.allowedFrom) return;
    // The header From of the JSON API is always the server's fromAddress.
    const serverId = input.serverId ?? (await deps.mail.servers.defaultServerId()) ?? '';
    const server = await deps.mail.servers.resolve(serverId);
    if (server && !fromAllowed(policy, server.fromAddress)) {
      throw new AppError('forbidden', {
        message: `This API key may not send as ${server.fromAddress}.`,
        details: [{ field: 'serverId', message: 'the server sends as an address the key may not use' }],
      });
    }
  }

  return async (body, actor, idempotencyKey) => {
    // The text part is derived from html here (enqueue would do it anyway), so the size counts the real one.
    const parsed = await withTextPart(parseInput(messageInput, body ?? {}));
    const size = encodedMessageSize(parsed);
    if (size > deps.limits.maxMessageBytes) {
      throw new AppError('message_too_large', {
        message: `The message would be about ${size} bytes as sent; at most ${deps.limits.maxMessageBytes} (MAILGATE_MAX_MESSAGE_BYTES).`,
      });
    }
    // Checking a large message (its base64 above all) and writing it are each tens of milliseconds; the store's
    // answers come as promises, not turns of the event loop, so without a turn here both would be one step.
    if (size > YIELD_ABOVE_BYTES) await nextTurn();
    const policy = actor.type === 'api_key' ? actor.policy : undefined;
    const serverId = serverForKey(policy, parsed.serverId);
    const input = serverId === undefined ? parsed : { ...parsed, serverId };
    await checkFrom(input, actor);
    await deps.keyRates.consume(actor.id, policy);
    return deps.mail.queue.enqueue(input, { apiKeyId: actor.id, idempotencyKey });
  };
}

/** Room for JSON escapes of the text parts beyond the message's own limit (the exact check follows parsing). */
const JSON_SLACK_BYTES = 8 * 1024 * 1024;

/** The most bytes the JSON body of one message may have: its limit as sent, plus room for JSON escapes. */
export function singleMessageBodyLimit(limits: IntakeLimits): number {
  return limits.maxMessageBytes + JSON_SLACK_BYTES;
}

/** A single message too large to parse is refused as the message being too large, not as any large body. */
export function singleMessageBodyError(err: unknown): unknown {
  return (err as { type?: string } | undefined)?.type === 'entity.too.large'
    ? new AppError('message_too_large', { cause: err })
    : err;
}

/**
 * The JSON bodies of the send API, larger than the rest of /api allows: a batch up to MAILGATE_MAX_BATCH_BYTES,
 * one message up to its limit plus room for escapes. Mounted before the general /api parser, which then leaves
 * the parsed body alone. A single message too large to parse is refused as message_too_large, as soon as the
 * bytes received pass the limit.
 */
export function messageBodyParsers(limits: IntakeLimits): RequestHandler[] {
  // Plain JSON bodies are read by json-body.ts (large ones parsed as they arrive); everything else by body-parser.
  const batch = jsonBody(limits.maxBatchBytes, express.json({ limit: limits.maxBatchBytes, strict: true }));
  const singleLimit = singleMessageBodyLimit(limits);
  const single = jsonBody(singleLimit, express.json({ limit: singleLimit, strict: true }));
  const isBatch = /^\/api\/v1\/messages\/batch\/?$/i;
  const isSingle = /^\/api\/v1\/messages\/?$/i;
  return [
    (req, res, next) => {
      if (req.method !== 'POST') return next();
      if (isBatch.test(req.path)) return batch(req, res, next);
      if (!isSingle.test(req.path)) return next();
      single(req, res, (err?: unknown) => next(err === undefined ? undefined : singleMessageBodyError(err)));
    },
  ];
}
