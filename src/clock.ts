/**
 * The time the token service and its scheduler read, injected so tests can move time instead of waiting
 * for it. Production uses the system clock.
 */

export type ClockTimer = ReturnType<typeof setTimeout>;

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  setTimeout(callback: () => void, ms: number): ClockTimer;
  clearTimeout(timer: ClockTimer | undefined): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (timer) => clearTimeout(timer),
};

/** The system clock's timers with another source of the current time (`now` undefined: the system's). */
export function clockFrom(now: (() => number) | undefined): Clock {
  return now ? { ...systemClock, now } : systemClock;
}
