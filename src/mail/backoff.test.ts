import { describe, expect, it } from 'vitest';
import { backoffDelay } from './backoff.js';

describe('backoffDelay', () => {
  it.each([
    { attempt: 1, random: 0, expected: 500 },
    { attempt: 1, random: 1, expected: 1000 },
    { attempt: 2, random: 0, expected: 1000 },
    { attempt: 3, random: 0.5, expected: 3000 },
    { attempt: 20, random: 1, expected: 60_000 },
    { attempt: 20, random: 0, expected: 30_000 },
  ])(
    'attempt $attempt with random $random waits $expected ms (base 1 s, cap 60 s, upper half)',
    ({ attempt, random, expected }) => {
      expect(backoffDelay(attempt, { baseMs: 1000, capMs: 60_000 }, () => random)).toBe(expected);
    },
  );

  it('without jitter doubles from the base up to the cap', () => {
    const delays = [1, 2, 3, 4, 5].map((n) => backoffDelay(n, { baseMs: 100, capMs: 400, jitter: 0 }, () => 0.9));
    expect(delays).toEqual([100, 200, 400, 400, 400]);
  });
});
