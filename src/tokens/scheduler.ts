import { systemClock, type Clock, type Timer } from '../clock.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/store.js';
import { GRANTS, type GrantRecord } from './grants.js';
import { refreshDueAt, type TokenService } from './refresh.js';

/**
 * Refreshes every active grant ahead of expiry (at the start of the last 20 % of its lifetime, at most
 * 5 minutes before), so senders rarely wait for a token and grants that send nothing are still used
 * regularly and do not lapse (Microsoft drops refresh tokens unused for 90 days, Google after 6 months).
 * Due times live in the store's schedule, so with many instances exactly one claims each refresh.
 */

export const REFRESH_QUEUE = 'oauth_refresh';

export interface TokenSchedulerDeps {
  store: Store;
  tokens: TokenService;
  log: Logger;
  pollMs?: number;
  /** Due times and the poll timer (the system clock by default). */
  clock?: Clock | undefined;
}

export class TokenScheduler {
  #timer: Timer | undefined;
  #running: Promise<void> | undefined;
  #stopped = true;
  readonly #pollMs: number;
  readonly #clock: Clock;

  constructor(private readonly deps: TokenSchedulerDeps) {
    this.#pollMs = deps.pollMs ?? 1000;
    this.#clock = deps.clock ?? systemClock;
  }

  /** Puts a grant's next refresh in the schedule (or takes it out when it needs re-authorization or is gone). */
  async reschedule(grantId: string): Promise<void> {
    const doc = await this.deps.store.get<GrantRecord>(GRANTS, grantId);
    if (!doc || doc.value.status !== 'active') {
      await this.deps.store.unschedule(REFRESH_QUEUE, grantId);
      return;
    }
    await this.deps.store.schedule(REFRESH_QUEUE, grantId, Math.max(refreshDueAt(doc.value), doc.value.retryAt ?? 0));
  }

  async start(): Promise<void> {
    // The schedule moves with every grant on a store whose indexes are durable (Redis): nothing to redo, so a start
    // costs the same at 100 and at 100,000 grants. The embedded store's schedule lines may lag its documents.
    if (!this.deps.store.durableIndexes)
      for (const doc of await this.deps.store.list<GrantRecord>(GRANTS)) await this.reschedule(doc.id);
    this.#stopped = false;
    const tick = () => {
      if (this.#stopped) return;
      this.#running = this.runDue()
        .then(() => undefined)
        .catch((err: unknown) => this.deps.log.error({ err }, 'token scheduler tick failed'))
        .finally(() => {
          if (!this.#stopped) this.#timer = this.#clock.setTimeout(tick, this.#pollMs);
        });
    };
    this.#timer = this.#clock.setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#timer?.cancel();
    await this.#running;
  }

  /** Refreshes the grants that are due now; returns how many were handled. */
  async runDue(now = this.#clock.now()): Promise<number> {
    const ids = await this.deps.store.claimDue(REFRESH_QUEUE, now, this.deps.tokens.lockTtlMs * 2, 20);
    for (const id of ids) {
      try {
        await this.deps.tokens.getAccessToken(id);
      } catch {
        // Recorded on the grant (lastError, backoff or needs_reauth); the schedule below follows it.
      }
      await this.reschedule(id).catch((err: unknown) =>
        this.deps.log.error({ err, grantId: id }, 'cannot reschedule token refresh'),
      );
    }
    return ids.length;
  }
}
