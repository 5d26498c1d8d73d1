/**
 * npm run bench [-- --n 2000 --rounds 3 --warmup 1 --connections 5 --clients 32 --concurrency 32 --only smtp]
 *
 * Sends N small messages to a local smtp-server sink (its own process), side by side in one run:
 *   (a) a raw nodemailer pool (the baseline; bench/raw-pool.ts),
 *   (b) the send module (validation, composition, cached pooled transport),
 *   (m) a minimal HTTP server that hands each request straight to the raw pool (no API key, no validation,
 *       nothing stored): the most any HTTP-fronted sender can reach on this machine with this client,
 *   (c) POST /api/v1/messages end to end (HTTP, validation, durable queue, workers) on the embedded file store
 *       and on Redis (a private redis-server started here, or MAILGATE_BENCH_REDIS_URL),
 * plus (q) the queue without HTTP and (h) the client against a server that only answers 202.
 * Every phase runs once per warm-up round first (not counted): a cold JIT halves nodemailer's throughput.
 * Prints messages per second, the ratios, p50/p99 API latency, peak RSS, and the CPU time per message of every
 * process in the run (mailgate, sink, client, Redis), because they share the machine's cores. Then the worst
 * event-loop stall: over the throughput rounds, and for HTML-only messages with crafted bodies of up to
 * --html-chars characters (bench/html-stall.ts), and for JSON bodies of 1, 5 and 25 MB with the peak RSS
 * (bench/json-stall.ts; `--only intake` runs these alone, --rounds times).
 * (s0)/(s): the same SMTP client straight to the sink, then through mailgate's submission front (bench/smtp-front.ts).
 */
import os from 'node:os';
import type { Bench } from './context.js';
import { prepareMailgateEntry } from './mailgate-entry.js';
import type { Phase } from './measure.js';
import { oauthRefreshBench } from './oauth-refresh.js';
import { runOnly } from './only.js';
import { parseBenchOptions } from './options.js';
import { PrivateRedis } from './private-redis.js';
import { printReport } from './report.js';
import { round, type RoundTally } from './round.js';
import { startSink } from './sink-process.js';
import { htmlStallPhase, intakePhase } from './stall-phases.js';

const options = parseBenchOptions();
const entry = prepareMailgateEntry();
const sink = await startSink();
const bench: Bench = { options, sink, entry, redis: new PrivateRedis() };

console.log(
  `mailgate bench: ${options.n} messages per phase, sink 127.0.0.1:${sink.port}, Node ${process.version}, ${os.cpus().length} CPUs`,
);

if (options.only) {
  await runOnly(bench, options.only);
  sink.disconnect();
  process.exit(0);
}

const tally: RoundTally = { worstStall: 0, redisCommands: [] };
for (let i = 1; i <= options.warmupRounds; i++) {
  console.log(`warm-up round ${i} of ${options.warmupRounds} (every phase once, not counted)`);
  await round(bench, true, tally);
}
// Several rounds, each phase once per round; the medians are reported (the machine's load varies a lot).
const rounds: Phase[][] = [];
for (let r = 1; r <= options.rounds; r++) {
  console.log(`round ${r} of ${options.rounds}`);
  rounds.push(await round(bench, false, tally));
}
printReport(bench, rounds, tally);

await htmlStallPhase(bench);
await intakePhase(bench);
// OAuth token refresh counts (bench/oauth-refresh.ts).
await oauthRefreshBench();
sink.disconnect();
process.exit(0);
