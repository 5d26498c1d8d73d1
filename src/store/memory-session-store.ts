import type session from 'express-session';

/**
 * express-session store for the embedded default: sessions in memory, expired ones pruned on a timer
 * (express-session's own MemoryStore never prunes and leaks). Sessions do not survive a restart, which
 * for a single-process embedded install just means admins log in again.
 *
 * Built from the session module handed in, because src/store must not import express-session itself
 * at runtime (the composition root owns that choice).
 */

const DEFAULT_TTL_MS = 24 * 60 * 60 * 1000;

interface Entry {
  json: string;
  expiresAt: number;
}

export interface PruningSessionStore extends session.Store {
  /** Stops the pruning timer (the store keeps working, expiry is then checked on read only). */
  stopPruning(): void;
  /** Number of stored sessions, expired ones included until the next prune. */
  readonly size: number;
}

export function createPruningSessionStore(sessionModule: typeof session, pruneEveryMs = 60_000): PruningSessionStore {
  const sessions = new Map<string, Entry>();

  function expiry(sess: session.SessionData): number {
    const expires = sess.cookie?.expires;
    if (expires) return new Date(expires).getTime();
    const maxAge = sess.cookie?.maxAge;
    return Date.now() + (typeof maxAge === 'number' ? maxAge : DEFAULT_TTL_MS);
  }

  function prune(): void {
    const now = Date.now();
    for (const [sid, entry] of sessions) if (entry.expiresAt <= now) sessions.delete(sid);
  }

  function live(sid: string): Entry | undefined {
    const entry = sessions.get(sid);
    if (entry && entry.expiresAt <= Date.now()) {
      sessions.delete(sid);
      return undefined;
    }
    return entry;
  }

  class PruningMemoryStore extends sessionModule.Store implements PruningSessionStore {
    #timer: NodeJS.Timeout | undefined = setInterval(prune, pruneEveryMs).unref();

    get size(): number {
      return sessions.size;
    }

    stopPruning(): void {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }

    override get(sid: string, callback: (err: unknown, session?: session.SessionData | null) => void): void {
      const entry = live(sid);
      let parsed: session.SessionData | null = null;
      try {
        if (entry) parsed = JSON.parse(entry.json) as session.SessionData;
      } catch (err) {
        callback(err);
        return;
      }
      setImmediate(callback, null, parsed);
    }

    override set(sid: string, sess: session.SessionData, callback?: (err?: unknown) => void): void {
      sessions.set(sid, { json: JSON.stringify(sess), expiresAt: expiry(sess) });
      if (callback) setImmediate(callback);
    }

    override destroy(sid: string, callback?: (err?: unknown) => void): void {
      sessions.delete(sid);
      if (callback) setImmediate(callback);
    }

    override touch(sid: string, sess: session.SessionData, callback?: () => void): void {
      const entry = live(sid);
      if (entry) entry.expiresAt = expiry(sess);
      if (callback) setImmediate(callback);
    }

    override all(callback: (err: unknown, obj?: Record<string, session.SessionData> | null) => void): void {
      prune();
      const out: Record<string, session.SessionData> = {};
      for (const [sid, entry] of sessions) out[sid] = JSON.parse(entry.json) as session.SessionData;
      setImmediate(callback, null, out);
    }

    override length(callback: (err: unknown, length?: number) => void): void {
      prune();
      setImmediate(callback, null, sessions.size);
    }

    override clear(callback?: (err?: unknown) => void): void {
      sessions.clear();
      if (callback) setImmediate(callback);
    }
  }

  return new PruningMemoryStore();
}
