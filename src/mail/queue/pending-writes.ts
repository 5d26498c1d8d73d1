import type { Logger } from '../../log.js';
import { StoreUnavailableError } from '../../store/store.js';
import { backoffDelay } from '../backoff.js';

/**
 * Store writes that must not be lost to a store outage: the outcome of a delivery (after an SMTP server accepted
 * a message, the only thing standing between it and a second send) and the release of a claim whose delivery
 * was cut off before anything was sent. While the store is unreachable each write is kept in memory and tried
 * again with backoff, so it lands as soon as the store is back instead of being left to a lease.
 *
 * Only StoreUnavailableError is retried; any other error (a version conflict, a bug) goes to the caller at once.
 * At stop, writes still pending are tried until `drainMs` has passed, then given up (logged): their messages
 * are delivered again once their lease ends, at least once as always.
 */
export interface PendingWrites {
  /** Runs `write` until it succeeds or throws something other than StoreUnavailableError. */
  persist<T>(messageId: string, write: () => Promise<T>): Promise<T>;
  /** Writes waiting for the store now. */
  readonly pending: number;
  /** Stops retrying after `drainMs` and waits for every write to settle. */
  stop(): Promise<void>;
}

export interface PendingWritesOptions {
  log: Logger;
  /** First retry delay; doubles up to `maxDelayMs`. */
  minDelayMs?: number;
  maxDelayMs?: number;
  /** How long stop() keeps trying. */
  drainMs?: number;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

export class WriteAbandonedError extends Error {
  constructor(messageId: string, options: { cause: unknown }) {
    super(`the store stayed unreachable; the write for ${messageId} was given up at stop`, options);
    this.name = 'WriteAbandonedError';
  }
}

export function createPendingWrites(options: PendingWritesOptions): PendingWrites {
  const { log } = options;
  const minDelayMs = options.minDelayMs ?? 100;
  const maxDelayMs = options.maxDelayMs ?? 1000;
  const drainMs = options.drainMs ?? 5000;
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const running = new Set<Promise<unknown>>();
  let pending = 0;
  let giveUpAt = Number.POSITIVE_INFINITY;

  async function persist<T>(messageId: string, write: () => Promise<T>): Promise<T> {
    let failures = 0;
    let waiting = false;
    try {
      for (;;) {
        try {
          return await write();
        } catch (err) {
          if (!(err instanceof StoreUnavailableError)) throw err;
          if (now() >= giveUpAt) {
            log.error(
              { messageId },
              'store still unreachable at stop; a delivery outcome was not written and the message will be sent again',
            );
            throw new WriteAbandonedError(messageId, { cause: err });
          }
          if (!waiting) {
            waiting = true;
            pending++;
            log.warn({ messageId }, 'store unreachable; keeping a delivery outcome in memory until it is back');
          }
          await sleep(backoffDelay(++failures, { baseMs: minDelayMs, capMs: maxDelayMs, jitter: 0 }));
        }
      }
    } finally {
      if (waiting) pending--;
    }
  }

  return {
    persist(messageId, write) {
      const p = persist(messageId, write);
      const tracked = p.catch(() => undefined);
      running.add(tracked);
      void tracked.finally(() => running.delete(tracked));
      return p;
    },
    get pending() {
      return pending;
    },
    async stop() {
      giveUpAt = now() + drainMs;
      await Promise.allSettled([...running]);
    },
  };
}
