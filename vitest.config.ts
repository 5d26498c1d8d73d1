import { defineConfig } from 'vitest/config';

// One run, three projects: unit (pure, beside the code), integration (real Redis, smtp-server,
// oidc-provider, HTTP), e2e (real Chromium). test/fakes/global-setup.ts starts a private Redis and finds
// Chromium; in CI a missing one fails the run instead of skipping suites.
export default defineConfig({
  test: {
    globalSetup: ['./test/fakes/global-setup.ts'],
    reporters: ['default', './test/fakes/summary-reporter.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Most suites wait on sockets, timers and child processes rather than the CPU: three files at a time finish a
    // 2-core run in about half the time of the default (cores - 1). Browser suites still run one at a time.
    maxWorkers: 3,
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['src/**/*.test.ts', 'test/unit/**/*.test.ts'] },
      },
      {
        extends: true,
        test: { name: 'integration', include: ['test/integration/**/*.test.ts'] },
      },
      {
        extends: true,
        test: { name: 'e2e', include: ['test/e2e/**/*.test.ts'], fileParallelism: false },
      },
    ],
  },
});
