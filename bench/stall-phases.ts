import type { Bench } from './context.js';
import { craftedBodies, htmlStall, printHtmlStall } from './html-stall.js';
import { buildApp } from './instances.js';
import { intakeStall, printIntakeStall } from './json-stall.js';

/**
 * HTML-only messages (bench/html-stall.ts): the review's 100,000 <, then crafted bodies of the largest size the API
 * accepts.
 */
export async function htmlStallPhase(bench: Bench): Promise<void> {
  const { sink } = bench;
  const stallApp = await buildApp(bench, null);
  await stallApp.start();
  const stalls = await htmlStall(
    {
      url: stallApp.url,
      key: stallApp.key,
      nextDelivery: () => sink.receivedReaches(sink.received + 1),
      mailgateStall: () => stallApp.stall(),
    },
    [['100,000 <', '<'.repeat(100_000)], ...craftedBodies(bench.options.htmlChars)],
  );
  await stallApp.close();
  printHtmlStall(stalls);
}

/** Large JSON bodies (bench/json-stall.ts) on the file store; --rounds repeats them. */
export async function intakePhase(bench: Bench): Promise<void> {
  const { sink } = bench;
  const app = await buildApp(bench, null);
  await app.start();
  const target = {
    url: app.url,
    key: app.key,
    pid: app.pids[0]!,
    nextDelivery: () => sink.receivedReaches(sink.received + 1),
    mailgateStall: () => app.stall(),
    mailgateCpuStall: () => app.cpuStall(),
  };
  printIntakeStall(await intakeStall(target));
  await app.close();
}
