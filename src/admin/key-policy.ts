import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import { z } from 'zod';
import { AppError } from '../errors.js';
import type { SessionsAndLimits } from '../store/sessions.js';

/**
 * The policy an API key may carry, one set of rules for every door mail comes in by (the JSON API now, the SMTP
 * submission front later):
 *   serverId             the server the key's mail goes through; a request naming another server is refused
 *   allowedFrom          header From addresses the key may use: addresses or `*@domain`
 *   rateLimitPerMinute   messages a minute, across every instance (the store's rate limiter: Redis when shared)
 * The checks are pure functions except the rate, which needs the store's shared counter.
 */

export const MAX_RATE_PER_MINUTE = 1_000_000;
const WILDCARD_DOMAIN =
  /^\*@(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;

const fromPattern = z
  .string()
  .trim()
  .max(320)
  .refine((v) => WILDCARD_DOMAIN.test(v) || z.email().safeParse(v).success, 'expected an address or *@domain');

export const keyPolicyFields = {
  serverId: z.string().trim().min(1, 'expected a server id').max(100).optional(),
  allowedFrom: z
    .array(fromPattern)
    .min(1, 'give at least one address or *@domain')
    .max(100, 'at most 100 entries')
    .optional(),
  rateLimitPerMinute: z
    .number()
    .int('expected a whole number')
    .min(1, 'at least 1')
    .max(MAX_RATE_PER_MINUTE)
    .optional(),
};

export const keyPolicy = z.strictObject(keyPolicyFields);
export type KeyPolicy = z.output<typeof keyPolicy>;

/** The policy with only the fields that are set (what is stored on the key and shown). */
export function normalizePolicy(policy: KeyPolicy): KeyPolicy {
  return {
    ...(policy.serverId !== undefined ? { serverId: policy.serverId } : {}),
    ...(policy.allowedFrom !== undefined
      ? { allowedFrom: [...new Set(policy.allowedFrom.map((p) => p.toLowerCase()))] }
      : {}),
    ...(policy.rateLimitPerMinute !== undefined ? { rateLimitPerMinute: policy.rateLimitPerMinute } : {}),
  };
}

/**
 * The server a message of this key goes through: the one requested, or the key's own when it is bound to one.
 * A bound key naming another server gets 403.
 */
export function serverForKey(policy: KeyPolicy | undefined, requested: string | undefined): string | undefined {
  if (!policy?.serverId) return requested;
  if (requested !== undefined && requested !== policy.serverId) {
    throw new AppError('forbidden', {
      message: `This API key may send only through server ${policy.serverId}.`,
      details: [{ field: 'serverId', message: 'not the server of this API key' }],
    });
  }
  return policy.serverId;
}

/** Whether the key may use this header From address (case-insensitive; `*@domain` matches that domain only). */
export function fromAllowed(policy: KeyPolicy | undefined, address: string): boolean {
  if (!policy?.allowedFrom) return true;
  const lower = address.trim().toLowerCase();
  const domain = lower.slice(lower.lastIndexOf('@') + 1);
  return policy.allowedFrom.some((p) => p === lower || (p.startsWith('*@') && p.slice(2) === domain));
}

/** A rejection of rate-limiter-flexible (limit reached) as opposed to a store error. */
function isLimitReached(err: unknown): err is { msBeforeNext: number } {
  return typeof err === 'object' && err !== null && 'msBeforeNext' in err && !(err instanceof Error);
}

/** rateLimitPerMinute: messages counted per key in the store's rate limiter, so every instance shares the count. */
export class KeyRateLimits {
  /** One limiter per distinct limit (a limiter has one number of points); keys are told apart by their id. */
  readonly #limiters = new Map<number, RateLimiterAbstract>();

  constructor(private readonly store: SessionsAndLimits) {}

  /** Counts `messages` against the key's limit; 429 with Retry-After when they do not fit in this minute. */
  async consume(keyId: string, policy: KeyPolicy | undefined, messages = 1): Promise<void> {
    const limit = policy?.rateLimitPerMinute;
    if (limit === undefined) return;
    let limiter = this.#limiters.get(limit);
    if (!limiter) {
      limiter = this.store.createRateLimiter({ keyPrefix: `key-rate-${limit}`, points: limit, durationSec: 60 });
      this.#limiters.set(limit, limiter);
    }
    try {
      await limiter.consume(keyId, messages);
    } catch (err) {
      if (!isLimitReached(err)) throw err;
      const seconds = Math.max(1, Math.ceil(err.msBeforeNext / 1000));
      throw new AppError('rate_limited', {
        message: `This API key may send ${limit} messages a minute; try again in ${seconds} s.`,
        headers: { 'Retry-After': String(seconds) },
      });
    }
  }
}
