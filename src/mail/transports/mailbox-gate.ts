/**
 * Per-mailbox pacing for the HTTP transports, in this instance: at most `limit` requests at once per mailbox
 * (Graph allows 4 concurrent requests per mailbox and answers 429 MailboxConcurrency beyond), and a mailbox
 * the provider slowed down (429 with Retry-After, a quota) is not called again before that time. Only that
 * mailbox waits; the others go on.
 */
export interface MailboxGate {
  /** Runs `task` when a slot of `key` is free. */
  run<T>(key: string, task: () => Promise<T>): Promise<T>;
  /** Until when `key` is slowed (ms since epoch), or null. */
  slowedUntil(key: string): number | null;
  slow(key: string, until: number): void;
  /** Requests running now for `key` (tests and metrics). */
  active(key: string): number;
}

export function createMailboxGate(options: { limit: number; now: () => number }): MailboxGate {
  const running = new Map<string, number>();
  const waiting = new Map<string, (() => void)[]>();
  const slowed = new Map<string, number>();

  function release(key: string): void {
    const next = waiting.get(key)?.shift();
    if (next) {
      next();
      return;
    }
    waiting.delete(key);
    const n = (running.get(key) ?? 1) - 1;
    if (n <= 0) running.delete(key);
    else running.set(key, n);
  }

  async function acquire(key: string): Promise<void> {
    const n = running.get(key) ?? 0;
    if (n < options.limit) {
      running.set(key, n + 1);
      return;
    }
    // The slot is handed over by release(): the running count stays as it is.
    await new Promise<void>((resolve) => {
      const list = waiting.get(key) ?? [];
      list.push(resolve);
      waiting.set(key, list);
    });
  }

  return {
    async run(key, task) {
      await acquire(key);
      try {
        return await task();
      } finally {
        release(key);
      }
    },
    slowedUntil(key) {
      const until = slowed.get(key);
      if (until === undefined) return null;
      if (until <= options.now()) {
        slowed.delete(key);
        return null;
      }
      return until;
    },
    slow(key, until) {
      slowed.set(key, Math.max(until, slowed.get(key) ?? 0));
    },
    active: (key) => running.get(key) ?? 0,
  };
}
