/** How a retried operation spaces its attempts. */
export interface Backoff {
  /** Delay before the second attempt. */
  baseMs: number;
  /** Longest delay, whatever the attempt. */
  capMs: number;
  /**
   * Share of the delay drawn at random, 0 to 1 (default 0.5: a random point in the upper half). Spreads the
   * retries of many messages failing together, so they do not all come back at the same moment.
   */
  jitter?: number;
}

/** Exponential backoff after failed attempt `attempt` (1-based): base·2^(attempt−1), capped, with jitter. */
export function backoffDelay(attempt: number, backoff: Backoff, random: () => number = Math.random): number {
  const jitter = backoff.jitter ?? 0.5;
  const exp = Math.min(backoff.capMs, backoff.baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(exp * (1 - jitter) + random() * exp * jitter);
}
