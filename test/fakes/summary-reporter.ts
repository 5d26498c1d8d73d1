import type { Reporter, SerializedError, TestModule } from 'vitest/node';

/**
 * Ends the run with one plain line, `N passed, N failed, N skipped`, that any CI log reader understands.
 * A file that failed outside its tests (a hook, an import) counts as one failure, as does an unhandled error,
 * so the line never says "0 failed" for a red run. What the test setup skipped for lack of a tool follows it.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<SerializedError>): void {
    let passed = 0;
    let failed = unhandledErrors.length;
    let skipped = 0;
    for (const module of testModules) {
      let failedHere = 0;
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failedHere++;
        else skipped++;
      }
      failed += failedHere > 0 ? failedHere : module.ok() ? 0 : 1;
    }
    process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped} skipped\n`);
    // The start-of-run banner has scrolled away by now; a run that could not test everything says so last.
    const missing = process.env.MAILGATE_TEST_MISSING_TOOLS;
    if (missing) process.stdout.write(`NOT TESTED on this machine:\n${missing.replace(/^/gm, '  ')}\n`);
  }
}
