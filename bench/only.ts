import path from 'node:path';
import { commandsBetween, commandStats } from '../test/fakes/redis-commands.js';
import type { Bench } from './context.js';
import { startClient, viaHttp } from './http-load.js';
import { buildApp } from './instances.js';
import { measure, median, type Phase } from './measure.js';
import { CPU_TARGETS } from './report.js';
import { cpuLine } from './smtp-front.js';
import { smtpPhases, type Build } from './smtp-phases.js';
import { intakePhase } from './stall-phases.js';

/**
 * --only file|file-nosync|redis: phase (c) of that store alone, warm-up rounds included, nothing else; for a CPU
 * profile of mailgate alone: MAILGATE_BENCH_NODE_ARGS="--cpu-prof" npx tsx bench/run.ts --only file --n 4000.
 * --against <another build's dist/bench/bench/mailgate-process.js>: each round runs that build first, then this
 * one, under the same load (the fair comparison of a change on a shared machine); prints the medians of both.
 * --only smtp: (s0) and (s) alone; with --against, both builds' (s) on each store after the same (s0).
 * --only intake: the large JSON bodies alone, --rounds times.
 */
export async function runOnly(bench: Bench, only: string): Promise<void> {
  if (only === 'smtp') return onlySmtp(bench);
  if (only === 'intake') {
    for (let r = 0; r < bench.options.rounds; r++) await intakePhase(bench);
    return;
  }
  if (!['file', 'file-nosync', 'redis'].includes(only))
    throw new Error('--only takes file, file-nosync, redis, smtp or intake');
  return onlyStore(bench, only);
}

function builds(bench: Bench): Build[] {
  return bench.options.against
    ? [
        ['before', [path.resolve(bench.options.against)]],
        ['after', bench.entry],
      ]
    : [['', bench.entry]];
}

async function onlySmtp(bench: Bench): Promise<void> {
  const { rounds: ROUNDS, warmupRounds: WARMUP_ROUNDS } = bench.options;
  const ratios = new Map<string, number[]>();
  const cpu = new Map<string, number[]>();
  for (let r = 0; r < WARMUP_ROUNDS + ROUNDS; r++) {
    const phases: Phase[] = [];
    await smtpPhases(
      bench,
      async (label, fn, pids) => {
        const p = await measure(bench, `${label}${r < WARMUP_ROUNDS ? ', warm-up' : ''}`, fn, false, pids);
        console.log(`    CPU ms/msg by process: ${cpuLine(p.parts ?? {})}`);
        phases.push({ ...p, label });
      },
      builds(bench),
    );
    if (r < WARMUP_ROUNDS) continue;
    let direct = phases[0]!;
    for (const p of phases) {
      if (p.label.startsWith('(s0)')) {
        direct = p;
        continue;
      }
      ratios.set(p.label, [...(ratios.get(p.label) ?? []), p.msgsPerSec / direct.msgsPerSec]);
      cpu.set(p.label, [...(cpu.get(p.label) ?? []), p.cpuMs]);
    }
  }
  for (const [label, xs] of ratios) {
    console.log(
      `s/s0 = ${median(xs).toFixed(2)} ${label} (median of ${ROUNDS}; goal ≥ 0.4; each round ${xs.map((x) => x.toFixed(2)).join(' ')}), mailgate CPU ${median(cpu.get(label)!).toFixed(2)} ms/msg`,
    );
  }
}

async function onlyStore(bench: Bench, only: string): Promise<void> {
  const { n: N, rounds: ROUNDS, warmupRounds: WARMUP_ROUNDS } = bench.options;
  const toRun = builds(bench);
  const results = new Map<string, Phase[]>(toRun.map(([name]) => [name, []]));
  for (let r = 0; r < WARMUP_ROUNDS + ROUNDS; r++) {
    for (const [name, entry] of toRun) {
      const redis = only === 'redis' ? await bench.redis.start() : null;
      if (only === 'redis' && !redis) throw new Error('no redis-server found');
      const app = await buildApp(bench, redis?.url ?? null, only === 'file-nosync' ? 'off' : 'always', {
        instances: redis ? 2 : 1,
        entry,
      });
      await app.start();
      const client = await startClient(bench, app.url, app.key);
      const before = redis ? await commandStats(redis.url) : null;
      const label = `(c) ${only}${name ? `, ${name}` : ''}${r < WARMUP_ROUNDS ? ', warm-up' : ''}`;
      const phase = await measure(bench, label, () => viaHttp(client, ''), false, app.pids);
      if (redis && before) {
        await app.stopQueue();
        const used = commandsBetween(before, await commandStats(redis.url)).filter(([cmd]) => cmd !== 'info');
        console.log(
          `    Redis commands per message: ${(used.reduce((sum, [, calls]) => sum + calls, 0) / N).toFixed(1)} (${used
            .slice(0, 8)
            .map(([cmd, calls]) => `${cmd} ${(calls / N).toFixed(2)}`)
            .join(', ')})`,
        );
      }
      if (r >= WARMUP_ROUNDS) results.get(name)!.push(phase);
      await app.close();
      await redis?.stop();
    }
  }
  for (const [name, phases] of results) {
    console.log(
      `${only}${name ? ` ${name}` : ''}: medians of ${phases.length} round(s): ${median(phases.map((p) => p.msgsPerSec)).toFixed(0)} msgs/s, mailgate CPU ${median(phases.map((p) => p.cpuMs)).toFixed(2)} ms/msg, peak RSS ${Math.max(...phases.map((p) => p.peakRssMb)).toFixed(0)} MB (targets ${CPU_TARGETS}, peak RSS ≤ 150 MB)`,
    );
  }
}
