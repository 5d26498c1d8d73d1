import { commandsBetween, commandStats } from '../test/fakes/redis-commands.js';
import type { Bench } from './context.js';
import { httpCeiling, startClient, startTrivialServer, viaHttp } from './http-load.js';
import { buildApp, type App } from './instances.js';
import { measure, type Phase, type PhaseResult } from './measure.js';
import { rawNodemailer, startMinimalFront } from './raw-pool.js';
import { smtpPhases } from './smtp-phases.js';

/** What the counted rounds gather besides their phases. */
export interface RoundTally {
  /** The worst event-loop delay of any mailgate process over the counted rounds, ms. */
  worstStall: number;
  /** Per counted round: the Redis commands of phase (c) on Redis, per command name. */
  redisCommands: [string, number][][];
}

/** Phase (b): the send module in the first instance. */
async function sendModule(bench: Bench, app: App): Promise<PhaseResult> {
  await app.first({ cmd: 'send-module', n: bench.options.n });
  return { note: 'validate + compose + cached pool' };
}

/** Phase (q): the queue without HTTP. */
async function viaQueue(bench: Bench, app: App): Promise<PhaseResult> {
  // Starts the workers; the (c) phase that follows on the same app uses them too.
  await app.start();
  await app.first({ cmd: 'enqueue', n: bench.options.n, clients: bench.options.clients });
  return { note: 'in-process enqueue, durable queue, workers' };
}

/** One round: every phase once, in the same order; a `quiet` (warm-up) round prints nothing and tallies nothing. */
export async function round(bench: Bench, quiet: boolean, tally: RoundTally): Promise<Phase[]> {
  const { clients: CLIENTS, queueConcurrency: QUEUE_CONCURRENCY } = bench.options;
  const phases: Phase[] = [];
  const run = async (label: string, fn: () => Promise<PhaseResult>, pids?: number[]) =>
    phases.push(await measure(bench, label, fn, quiet, pids));
  await run('(a) raw nodemailer pool', () => rawNodemailer(bench));

  const fileApp = await buildApp(bench, null);
  await run('(b) send module', () => sendModule(bench, fileApp), fileApp.pids);
  const front = await startMinimalFront(bench);
  const frontClient = await startClient(bench, front.url, 'none');
  await run('(m) minimal HTTP front to the raw pool', () =>
    viaHttp(frontClient, 'no key check, no validation, nothing stored'),
  );
  await front.close();
  await run('(q) queue only, file store', () => viaQueue(bench, fileApp), fileApp.pids);
  const fileClient = await startClient(bench, fileApp.url, fileApp.key);
  await run(
    '(c) POST /api/v1/messages, file store',
    () => viaHttp(fileClient, `${CLIENTS} HTTP clients, queue concurrency ${QUEUE_CONCURRENCY}`),
    fileApp.pids,
  );
  if (!quiet) tally.worstStall = Math.max(tally.worstStall, await fileApp.stall());
  await fileApp.close();
  // The same with MAILGATE_FSYNC=off: what the fsync of every write batch costs.
  const noSyncApp = await buildApp(bench, null, 'off');
  await run('(q) queue only, file store, fsync off', () => viaQueue(bench, noSyncApp), noSyncApp.pids);
  const noSyncClient = await startClient(bench, noSyncApp.url, noSyncApp.key);
  await run(
    '(c) POST /api/v1/messages, file, fsync off',
    () => viaHttp(noSyncClient, `${CLIENTS} HTTP clients, queue concurrency ${QUEUE_CONCURRENCY}`),
    noSyncApp.pids,
  );
  if (!quiet) tally.worstStall = Math.max(tally.worstStall, await noSyncApp.stall());
  await noSyncApp.close();

  const redis = await bench.redis.start();
  if (redis) {
    // Two instances on one Redis, as a fleet runs: their CPU is summed, the RSS is the larger one's.
    const redisApp = await buildApp(bench, redis.url, 'always', { instances: 2 });
    await run('(q) queue only, Redis, 2 instances', () => viaQueue(bench, redisApp), redisApp.pids);
    const redisClient = await startClient(bench, redisApp.url, redisApp.key);
    const before = await commandStats(redis.url);
    await run(
      '(c) POST /api/v1/messages, Redis, 2 instances',
      () => viaHttp(redisClient, `${CLIENTS} HTTP clients over 2 instances, queue concurrency ${QUEUE_CONCURRENCY}`),
      redisApp.pids,
    );
    // The last outcome writes follow the sink's count: stopping the workers waits for them.
    await redisApp.stopQueue();
    const used = commandsBetween(before, await commandStats(redis.url)).filter(([name]) => name !== 'info');
    if (!quiet) tally.redisCommands.push(used);
    if (!quiet) tally.worstStall = Math.max(tally.worstStall, await redisApp.stall());
    await redisApp.close();
    await redis.stop();
  } else if (!quiet) {
    console.log(
      '  Redis phases skipped: no redis-server found (apt-get install redis-server, or set MAILGATE_BENCH_REDIS_URL)',
    );
  }
  const trivial = await startTrivialServer();
  const trivialClient = await startClient(bench, trivial.url, 'none');
  await run('(h) HTTP ceiling: 202 from a no-op server', () => httpCeiling(bench, trivialClient));
  await trivial.close();
  await smtpPhases(bench, run);
  await run('(a) raw nodemailer pool, again', () => rawNodemailer(bench));
  return phases;
}
