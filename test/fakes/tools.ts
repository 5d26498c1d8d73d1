import { inject } from 'vitest';
import type { TestTools } from './global-setup.js';

/**
 * Path of a program or device a test needs, or null when this machine has none: the test then skips, and
 * the run says so in its banner (in CI the run fails before any test instead).
 */
export function toolForTests(name: keyof TestTools): string | null {
  return inject('tools')[name];
}
