import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
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

export interface TestBrowser {
  context: BrowserContext;
  page: Page;
  close(): Promise<void>;
}

/**
 * Headless Chromium with a fresh profile. Page errors and console errors go to `consoleErrors`; HTTP
 * statuses ("Failed to load resource", e.g. the 401 of a wrong password) are expected and left out, CSP and
 * script errors are not.
 */
export async function openTestBrowser(consoleErrors: string[]): Promise<TestBrowser> {
  const profile = await mkdtemp(path.join(os.tmpdir(), 'mailgate-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPathForTests()!,
    args: CHROMIUM_ARGS,
    headless: true,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (err) => consoleErrors.push(err.message));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) consoleErrors.push(msg.text());
  });
  return {
    context,
    page,
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}
