import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { AppError } from '../errors.js';

const CHALLENGE = { 'WWW-Authenticate': 'Bearer realm="mailgate-metrics"' };

// Both sides are hashed first: equal-length digests let timingSafeEqual compare them, and the time
// taken says nothing about the token's length or how much of it a guess got right.
function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/**
 * Guards /metrics with MAILGATE_METRICS_TOKEN (`Authorization: Bearer <token>`); without a token
 * configured, everyone who reaches the port may scrape.
 */
export function metricsAccess(token: string | undefined): RequestHandler {
  if (token === undefined) return (_req, _res, next) => next();
  const expected = digest(token);
  return (req, _res, next) => {
    const match = /^Bearer ([^\s]+)$/i.exec(req.get('authorization') ?? '');
    if (match?.[1] !== undefined && timingSafeEqual(digest(match[1]), expected)) return next();
    next(
      new AppError('unauthenticated', {
        message: 'Send the metrics token: Authorization: Bearer <MAILGATE_METRICS_TOKEN>.',
        headers: CHALLENGE,
      }),
    );
  };
}
