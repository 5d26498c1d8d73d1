import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import type { SessionsAndLimits } from '../store/sessions.js';
import { HashingBusyError } from './hashing-gate.js';
import { normalizeEmail, type User, type UserService } from './users.js';

/**
 * Password checks under limits that hold across instances (the store's rate limiters: Redis when configured).
 * Every attempt is counted before its password is checked and refunded when it succeeds, so parallel attempts
 * cannot slip past a limit that is read first and counted later.
 *
 * - Per client address: 20 checked attempts per 15 minutes across all accounts, then the address waits out the
 *   window. This caps what one address can cost the server and what it can do to any one account.
 * - Per account and address: 5 failures are free; after that each attempt must wait 2, 4, 8 ... seconds (at most
 *   15 minutes) after the previous one. Only that address waits.
 * - Per account, from every address together: 20 failures per hour are free, then the same growing waits. One
 *   address cannot reach 20 (it is capped above), so a single attacker never makes the owner wait; a distributed
 *   one slows every guess without a fixed lockout, and the owner's next success clears the count.
 */

export const LOGIN_LIMITS = {
  perIp: { attempts: 20, windowSec: 15 * 60 },
  perAccountFromIp: { freeFailures: 5 },
  perAccount: { freeFailures: 20 },
  /** How long failures are remembered for the growing waits. */
  failureWindowSec: 60 * 60,
  maxWaitSec: 15 * 60,
  /** When too many checks queue in this process: ask to come back shortly. */
  busyRetrySec: 5,
};

export type LoginCheck =
  | { outcome: 'ok'; user: User }
  | { outcome: 'invalid_credentials' }
  | { outcome: 'rate_limited'; retryAfterSec: number; limit: 'address' | 'account' | 'busy' };

interface Spacing {
  limit: 'address' | 'account';
  failures: RateLimiterAbstract;
  /** Holds one attempt per wait: the first to take it may go ahead, the others are answered 429. */
  turn: RateLimiterAbstract;
  free: number;
}

function msBeforeNext(rejection: unknown): number {
  // rate-limiter-flexible rejects with a RateLimiterRes for "limit reached"; an Error is a store failure.
  if (rejection instanceof Error || typeof (rejection as { msBeforeNext?: unknown }).msBeforeNext !== 'number')
    throw rejection;
  return (rejection as { msBeforeNext: number }).msBeforeNext;
}

const toRetrySec = (ms: number) => Math.max(1, Math.ceil(ms / 1000));

export class LoginGuard {
  readonly #perIp: RateLimiterAbstract;
  readonly #spacings: { fromIp: Spacing; account: Spacing };

  constructor(
    store: SessionsAndLimits,
    private readonly users: UserService,
  ) {
    const failures = (keyPrefix: string) =>
      store.createRateLimiter({ keyPrefix, points: 1_000_000, durationSec: LOGIN_LIMITS.failureWindowSec });
    const turn = (keyPrefix: string) =>
      store.createRateLimiter({ keyPrefix, points: 1, durationSec: LOGIN_LIMITS.maxWaitSec });
    this.#perIp = store.createRateLimiter({
      keyPrefix: 'login_ip',
      points: LOGIN_LIMITS.perIp.attempts,
      durationSec: LOGIN_LIMITS.perIp.windowSec,
    });
    this.#spacings = {
      fromIp: {
        limit: 'address',
        failures: failures('login_account_ip_failures'),
        turn: turn('login_account_ip_turn'),
        free: LOGIN_LIMITS.perAccountFromIp.freeFailures,
      },
      account: {
        limit: 'account',
        failures: failures('login_account_failures'),
        turn: turn('login_account_turn'),
        free: LOGIN_LIMITS.perAccount.freeFailures,
      },
    };
  }

  async check(emailInput: string, password: string, ip: string): Promise<LoginCheck> {
    const email = normalizeEmail(emailInput);
    const keys = { fromIp: `${ip} ${email}`, account: email };
    const refunds: Array<() => Promise<unknown>> = [];
    const refund = async () => {
      await Promise.all(refunds.map((r) => r()));
    };

    try {
      await this.#perIp.consume(ip);
    } catch (rejection) {
      return { outcome: 'rate_limited', retryAfterSec: toRetrySec(msBeforeNext(rejection)), limit: 'address' };
    }
    refunds.push(() => this.#perIp.reward(ip, 1));

    for (const name of ['fromIp', 'account'] as const) {
      const spacing = this.#spacings[name];
      const key = keys[name];
      const attempt = (await spacing.failures.consume(key)).consumedPoints;
      refunds.push(() => spacing.failures.reward(key, 1));
      if (attempt <= spacing.free) continue;
      const waitSec = Math.min(2 ** (attempt - spacing.free), LOGIN_LIMITS.maxWaitSec);
      try {
        await spacing.turn.consume(key, 1, { customDuration: waitSec });
      } catch (rejection) {
        const ms = msBeforeNext(rejection);
        await refund();
        return { outcome: 'rate_limited', retryAfterSec: toRetrySec(ms), limit: spacing.limit };
      }
      refunds.push(() => spacing.turn.delete(key));
    }

    let user: User | null;
    try {
      user = await this.users.verifyLogin(email, password);
    } catch (err) {
      if (!(err instanceof HashingBusyError)) throw err;
      await refund();
      return { outcome: 'rate_limited', retryAfterSec: LOGIN_LIMITS.busyRetrySec, limit: 'busy' };
    }
    if (!user) return { outcome: 'invalid_credentials' };
    // The owner proved the password: their account's failures are forgotten and the address gets its attempt back.
    await Promise.all([
      this.#perIp.reward(ip, 1),
      ...(['fromIp', 'account'] as const).flatMap((name) => [
        this.#spacings[name].failures.delete(keys[name]),
        this.#spacings[name].turn.delete(keys[name]),
      ]),
    ]);
    return { outcome: 'ok', user };
  }
}
