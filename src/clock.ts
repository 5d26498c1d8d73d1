/**
 * The time, injected: services read it here instead of the wall clock, so tests move time rather than wait
 * for it. Timers set through a clock are for deadlines measured on that clock.
 */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  setTimeout(fn: () => void, ms: number): Timer;
}

function realTimeout(fn: () => void, ms: number): Timer {
  const handle = setTimeout(fn, ms);
  return { cancel: () => clearTimeout(handle) };
}

export const systemClock: Clock = { now: () => Date.now(), setTimeout: realTimeout };

/** A clock that reads the time from `now` (a test's hand-moved time) and waits in real time. */
export function clockReading(now: () => number): Clock {
  return { now, setTimeout: realTimeout };
}

/** `clockReading(now)`, or the system clock when no source of time is given. */
export function clockFrom(now: (() => number) | undefined): Clock {
  return now ? clockReading(now) : systemClock;
}
