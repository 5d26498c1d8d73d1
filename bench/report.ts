import os from 'node:os';
import type { Bench } from './context.js';
import { median, type Phase } from './measure.js';
import type { RoundTally } from './round.js';
import { cpuLine } from './smtp-front.js';

/** mailgate's own CPU per message that the queue's design is held to (with MAILGATE_FSYNC=always on the file store). */
export const CPU_TARGETS = '≤ 0.8 ms file store, ≤ 1.0 ms Redis summed over two instances';

/** Each phase over the rounds: the medians, and the largest peak RSS. */
function medianPhases(rounds: Phase[][]): Phase[] {
  return rounds[0]!.map((p, i) => {
    const all = rounds.map((r) => r[i]!);
    const m: Phase = {
      label: p.label,
      msgsPerSec: median(all.map((x) => x.msgsPerSec)),
      peakRssMb: Math.max(...all.map((x) => x.peakRssMb)),
      cpuMs: median(all.map((x) => x.cpuMs)),
      machineCpuMs: median(all.map((x) => x.machineCpuMs)),
    };
    if (p.parts)
      m.parts = Object.fromEntries(Object.keys(p.parts).map((k) => [k, median(all.map((x) => x.parts?.[k] ?? 0))]));
    if (p.p50 !== undefined) {
      m.p50 = median(all.map((x) => x.p50!));
      m.p99 = median(all.map((x) => x.p99!));
    }
    return m;
  });
}

/** The table of the counted rounds' medians, the ratios, the CPU per message and the worst stall. */
export function printReport(bench: Bench, rounds: Phase[][], tally: RoundTally): void {
  const { n: N, rounds: ROUNDS, warmupRounds: WARMUP_ROUNDS } = bench.options;
  const phases = medianPhases(rounds);
  const find = (prefix: string) => phases.filter((p) => p.label.startsWith(prefix));
  const storeOf = (p: Phase) =>
    p.label.includes('Redis') ? 'Redis' : p.label.includes('fsync off') ? 'file (fsync off)' : 'file';
  const raws = find('(a)');
  const baseline = raws.reduce((sum, p) => sum + p.msgsPerSec, 0) / raws.length;
  console.log(
    `\nmedians of ${ROUNDS} round(s) after ${WARMUP_ROUNDS} warm-up round(s); peak RSS = max of the process running mailgate (the sink and the HTTP clients run in their own processes)`,
  );
  console.log(
    '\nphase                                        msgs/s   vs (a)   p50 ms   p99 ms   CPU ms/msg   all processes   peak RSS MB',
  );
  for (const p of phases) {
    console.log(
      `${p.label.padEnd(44)} ${p.msgsPerSec.toFixed(0).padStart(6)}   ${(p.msgsPerSec / baseline).toFixed(2).padStart(6)}   ${p.p50 === undefined ? '     -' : p.p50.toFixed(1).padStart(6)}   ${p.p99 === undefined ? '     -' : p.p99.toFixed(1).padStart(6)}   ${p.cpuMs.toFixed(2).padStart(10)}   ${p.machineCpuMs.toFixed(2).padStart(13)}   ${p.peakRssMb.toFixed(0).padStart(11)}`,
    );
  }
  /**
   * A ratio is taken within each round (phase against that round's own raw runs, or against another phase of the
   * same round), then the median over rounds: the machine's speed drifts between rounds, far less within one.
   */
  const ratio = (p: Phase, to?: Phase) => {
    const i = phases.indexOf(p);
    const j = to ? phases.indexOf(to) : -1;
    const perRound = rounds.map((r) => {
      const raw = r.filter((x) => x.label.startsWith('(a)'));
      const base = j >= 0 ? r[j]!.msgsPerSec : raw.reduce((sum, x) => sum + x.msgsPerSec, 0) / raw.length;
      return r[i]!.msgsPerSec / base;
    });
    return median(perRound).toFixed(2);
  };
  const b = find('(b)')[0]!;
  const m = find('(m)')[0]!;
  const cs = find('(c)');
  console.log(
    `\nratios, each the median over rounds of the ratio within a round (against the mean of that round's two raw runs for x/a):`,
  );
  console.log(`  b/a = ${ratio(b)} (target ≥ 0.95)`);
  console.log(`  c/a = ${cs.map((p) => `${ratio(p)} ${storeOf(p)}`).join(', ')} (target ≥ 0.70)`);
  console.log(`  m/a = ${ratio(m)}: the ceiling of any HTTP-fronted sender here (no key check, validation or storage)`);
  console.log(`  c/m = ${cs.map((p) => `${ratio(p, m)} ${storeOf(p)}`).join(', ')}: mailgate against that ceiling`);
  for (const s of find('(s) ')) {
    // Against the (s0) run just before it.
    const s0 = phases.slice(0, phases.indexOf(s)).findLast((p) => p.label.startsWith('(s0)'))!;
    console.log(
      `  s/s0 = ${ratio(s, s0)} ${s.label.slice(4)} (goal ≥ 0.4): against the same client straight to the sink`,
    );
    console.log(`    CPU ms/msg by process: ${cpuLine(s.parts ?? {})}, (s0): ${cpuLine(s0.parts ?? {})}`);
  }
  const cores = os.cpus().length;
  console.log(
    `\nCPU per message summed over every process (mailgate or the raw pool, sink, HTTP client, Redis), on ${cores} core(s): (a) ${raws[0]!.machineCpuMs.toFixed(2)} ms, (m) ${m.machineCpuMs.toFixed(2)} ms, ${cs.map((p) => `(c) ${storeOf(p)} ${p.machineCpuMs.toFixed(2)} ms`).join(', ')}.`,
  );
  console.log(
    `At full use of ${cores} core(s) that allows at most ${cs.map((p) => `${((cores * 1000) / p.machineCpuMs / baseline).toFixed(2)} of (a) for (c) ${storeOf(p)}`).join(', ')}; the busiest single process (mailgate) allows ${cs.map((p) => `${(1000 / p.cpuMs / baseline).toFixed(2)} ${storeOf(p)}`).join(', ')}.`,
  );
  console.log(
    `mailgate's own CPU per message (its process alone): ${cs.map((p) => `(c) ${storeOf(p)} ${p.cpuMs.toFixed(2)} ms`).join(', ')} (targets ${CPU_TARGETS}); peak RSS ${Math.max(...cs.map((p) => p.peakRssMb)).toFixed(0)} MB (target ≤ 150 MB).`,
  );
  const { redisCommands } = tally;
  if (redisCommands.length > 0) {
    const perMessage = redisCommands.map((used) => used.reduce((sum, [, calls]) => sum + calls, 0) / N);
    const last = redisCommands.at(-1)!;
    console.log(
      `Redis commands per message, (c) end to end, commands inside scripts included: ${perMessage.map((x) => x.toFixed(1)).join(', ')} (rounds); last round by command: ${last
        .slice(0, 12)
        .map(([name, calls]) => `${name} ${(calls / N).toFixed(2)}`)
        .join(', ')}.`,
    );
    console.log(
      `One Redis at ~100,000 commands/s carries about ${Math.round(100_000 / median(perMessage)).toLocaleString('en')} messages/s for a whole fleet.`,
    );
  }
  console.log(
    `\nworst event-loop stall of the process running mailgate during the rounds: ${tally.worstStall.toFixed(1)} ms`,
  );
}
