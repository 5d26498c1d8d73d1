import { readFileSync } from 'node:fs';
import type { Bench } from './context.js';

export interface Phase {
  label: string;
  msgsPerSec: number;
  p50?: number;
  p99?: number;
  peakRssMb: number;
  /** CPU time of this process (the one running mailgate, the raw pool or the minimal servers) per message, ms. */
  cpuMs: number;
  /** CPU time per message of every process in the run: this one, the sink, the HTTP client, Redis. */
  machineCpuMs: number;
  /** CPU time per message of each process (mailgate, sink, client, redis), ms. */
  parts?: Record<string, number>;
  note?: string;
}

/** What a phase reports besides its own timing: latencies and CPU time of the client and of Redis. */
export interface PhaseResult {
  latencies?: number[];
  clientCpuMs?: number;
  note?: string;
}

/** Runs one phase: `label`, what it runs, and the mailgate processes it charges (this process's without them). */
export type RunPhase = (label: string, fn: () => Promise<PhaseResult>, pids?: number[]) => Promise<unknown>;

export const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

/** CPU time (ms) of another process, from /proc (Linux); 0 where it cannot be read. */
function processCpuMs(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    // Fields 14 and 15 (utime, stime) in clock ticks, counted after the ")" that ends the command name.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * (1000 / 100);
  } catch {
    return 0;
  }
}

/** Resident set size of another process, in bytes, from /proc (Linux); 0 where it cannot be read. */
function processRss(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * Runs a phase until the sink has its N messages, and prints its line unless `quiet`.
 * `pids`: the mailgate processes of the phase, whose CPU (summed) and RSS (the largest) are the phase's own;
 * without them, this process's (the raw pool, the minimal fronts).
 */
export async function measure(
  bench: Bench,
  label: string,
  run: () => Promise<PhaseResult>,
  quiet = false,
  pids?: number[],
): Promise<Phase> {
  const { sink, redis } = bench;
  const N = bench.options.n;
  const rss = () => (pids ? Math.max(...pids.map(processRss)) : process.memoryUsage.rss());
  const cpuNow = () => {
    if (pids) return pids.reduce((sum, pid) => sum + processCpuMs(pid), 0);
    const c = process.cpuUsage();
    return (c.user + c.system) / 1000;
  };
  let peak = rss();
  // Every 100 ms: reading the RSS costs about half a millisecond, and at every 20 ms it was 2 % of the CPU the
  // phase charged to mailgate. The heap grows and shrinks over hundreds of milliseconds, so the peak is still seen.
  const sampler = setInterval(() => (peak = Math.max(peak, rss())), 100);
  const start = sink.received;
  const cpu0 = cpuNow();
  const sink0 = sink.cpuMs;
  const redis0 = processCpuMs(redis.pid);
  const t0 = performance.now();
  const r = await run();
  await sink.receivedReaches(start + N);
  const seconds = (performance.now() - t0) / 1000;
  const own = cpuNow() - cpu0;
  clearInterval(sampler);
  peak = Math.max(peak, rss());
  const others = sink.cpuMs - sink0 + (r.clientCpuMs ?? 0) + (processCpuMs(redis.pid) - redis0);
  const phase: Phase = {
    label,
    msgsPerSec: N / seconds,
    peakRssMb: peak / 1024 / 1024,
    cpuMs: own / N,
    machineCpuMs: (own + others) / N,
    parts: {
      mailgate: own / N,
      sink: (sink.cpuMs - sink0) / N,
      client: (r.clientCpuMs ?? 0) / N,
      redis: (processCpuMs(redis.pid) - redis0) / N,
    },
  };
  if (r.note) phase.note = r.note;
  if (r.latencies?.length) {
    const sorted = [...r.latencies].sort((a, b) => a - b);
    phase.p50 = sorted[Math.floor(sorted.length * 0.5)]!;
    phase.p99 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))]!;
  }
  if (!quiet) {
    console.log(
      `  ${label}: ${phase.msgsPerSec.toFixed(0)} msgs/s${phase.p50 !== undefined ? `, API p50 ${phase.p50.toFixed(1)} ms p99 ${phase.p99!.toFixed(1)} ms` : ''}, CPU ${phase.cpuMs.toFixed(2)} ms/msg (all processes ${phase.machineCpuMs.toFixed(2)}), peak RSS ${phase.peakRssMb.toFixed(0)} MB`,
    );
  }
  return phase;
}
