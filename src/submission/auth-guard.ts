import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import type { SessionsAndLimits } from '../store/sessions.js';

/**
 * Wrong API keys on the submission front slow the address they come from, never the key: the key's owner, from
 * anywhere else, is not locked out (there is no account to lock; a guessed key is 256 bits anyway, what this bounds
 * is the cost of the guessing). Failures are counted per client address across instances (the store's rate
 * limiters); the first FREE_FAILURES are free, then each attempt must wait 2, 4, 8 ... seconds (at most 15 minutes)
 * after the previous one, as the login form does. A successful login from the address clears its count.
 */

export const AUTH_LIMITS = { freeFailures: 10, failureWindowSec: 60 * 60, maxWaitSec: 15 * 60 };

export type AuthTurn = { ok: true } | { ok: false; retryAfterSec: number };

function msBeforeNext(rejection: unknown): number {
  if (rejection instanceof Error || typeof (rejection as { msBeforeNext?: unknown }).msBeforeNext !== 'number')
    throw rejection;
  return (rejection as { msBeforeNext: number }).msBeforeNext;
}

export class SubmissionAuthGuard {
  readonly #failures: RateLimiterAbstract;
  readonly #turn: RateLimiterAbstract;

  constructor(store: SessionsAndLimits) {
    this.#failures = store.createRateLimiter({
      keyPrefix: 'smtp_auth_ip_failures',
      points: 1_000_000,
      durationSec: AUTH_LIMITS.failureWindowSec,
    });
    this.#turn = store.createRateLimiter({ keyPrefix: 'smtp_auth_ip_turn', points: 1, durationSec: 60 });
  }

  /** Whether the address may try a key now. */
  async turn(ip: string): Promise<AuthTurn> {
    const seen = (await this.#failures.get(ip))?.consumedPoints ?? 0;
    if (seen < AUTH_LIMITS.freeFailures) return { ok: true };
    const waitSec = Math.min(2 ** (seen - AUTH_LIMITS.freeFailures + 1), AUTH_LIMITS.maxWaitSec);
    try {
      await this.#turn.consume(ip, 1, { customDuration: waitSec });
      return { ok: true };
    } catch (rejection) {
      return { ok: false, retryAfterSec: Math.max(1, Math.ceil(msBeforeNext(rejection) / 1000)) };
    }
  }

  async failed(ip: string): Promise<void> {
    await this.#failures.consume(ip);
  }

  async succeeded(ip: string): Promise<void> {
    await Promise.all([this.#failures.delete(ip), this.#turn.delete(ip)]);
  }
}
