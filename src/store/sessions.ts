import type session from 'express-session';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import { createPruningSessionStore } from './memory-session-store.js';
import type { Store } from './store.js';

/**
 * Browser sessions and rate limits are kept where the store keeps its data, so every instance on a shared
 * store shares them: in Redis for the Redis store, in this process's memory for the embedded store (which
 * one process has to itself). They are the web layer's and the API keys' concern, not the documents', so
 * they are a capability of their own, and only this module and the backends know express-session and
 * rate-limiter-flexible.
 */

export interface RateLimiterOptions {
  keyPrefix: string;
  points: number;
  durationSec: number;
  blockDurationSec?: number;
}

export interface SessionsAndLimits {
  /** An express-session store (built from the module handed in, so src/store needs no runtime import of it). */
  createSessionStore(sessionModule: typeof session): session.Store;
  createRateLimiter(options: RateLimiterOptions): RateLimiterAbstract;
}

/** What a backend opens: every store capability, and the sessions and rate limits kept on the same backend. */
export type StoreWithSessions = Store & SessionsAndLimits;

/** Sessions and rate limits in this process's memory; `close` stops pruning expired sessions. */
export function memorySessionsAndLimits(
  options: { sessionPruneEveryMs?: number } = {},
): SessionsAndLimits & { close(): void } {
  const sessionStores: { stopPruning(): void }[] = [];
  return {
    createSessionStore(sessionModule) {
      const store = createPruningSessionStore(sessionModule, options.sessionPruneEveryMs ?? 60_000);
      sessionStores.push(store);
      return store;
    },
    createRateLimiter(limits) {
      return new RateLimiterMemory({
        keyPrefix: limits.keyPrefix,
        points: limits.points,
        duration: limits.durationSec,
        blockDuration: limits.blockDurationSec ?? 0,
      });
    },
    close() {
      for (const store of sessionStores) store.stopPruning();
    },
  };
}
