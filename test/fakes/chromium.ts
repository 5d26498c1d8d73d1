import { inject } from 'vitest';

/** Path of Chromium for browser tests, or null when this machine has none (the suite then skips loudly). */
export function chromiumPathForTests(): string | null {
  return inject('chromiumPath');
}

/** Flags that keep headless Chromium quiet on a machine without outside network. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--disable-background-networking',
  '--no-first-run',
  '--disable-component-update',
  '--disable-sync',
];
