import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';

/** URL of the run's private Redis, or null when this machine has none (the suite then skips loudly). */
export function redisUrlForTests(): string | null {
  return inject('redisUrl');
}

/** A key prefix no other test uses, so tests never see each other's keys. */
export function uniquePrefix(label = 't'): string {
  return `mgtest:${label}:${randomBytes(6).toString('hex')}:`;
}
