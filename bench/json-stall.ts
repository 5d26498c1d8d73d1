/**
 * Large JSON bodies through POST /api/v1/messages (`npm run bench -- --only intake`, and a phase of every full
 * run): bodies of about 1, 5 and 25 MB, almost all of it one attachment in base64, POSTed to a running mailgate
 * (its own process) and followed until the sink has the message. Printed per body: the worst event-loop delay of
 * the mailgate process (perf_hooks.monitorEventLoopDelay, its own) from the POST to the 202 and from the 202 to
 * delivery; the longest synchronous step up to the 202 as CPU time (on a loaded machine the delay also counts the
 * wait for a core); the time to the 202; and the peak RSS of the mailgate process up to the 202 and up to delivery
 * (read from /proc every 10 ms). The body is built and sent by this process, so the client's own memory and CPU
 * are not counted.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export interface IntakeTarget {
  url: string;
  key: string;
  pid: number;
  /** Resolves once the sink has received one more message than when it was called. */
  nextDelivery(): Promise<void>;
  /** The worst event-loop delay of the mailgate process since the last call, in ms. */
  mailgateStall(): Promise<number>;
  /** The most CPU time the mailgate process spent between two ticks of a 10 ms timer since the last call, in ms. */
  mailgateCpuStall(): Promise<number>;
}

export interface IntakeResult {
  bodyBytes: number;
  intakeStallMs: number;
  /** The longest synchronous step from the POST to the 202, as CPU time: what a loaded machine does not stretch. */
  intakeCpuStallMs: number;
  intakeMs: number;
  deliveryStallMs: number;
  rssBeforeMb: number;
  /** The peak from the POST to the 202 (the intake), and to delivery. */
  peakIntakeRssMb: number;
  peakRssMb: number;
}

/** Body sizes of the phase, in bytes: the largest is about the most the default MAILGATE_MAX_MESSAGE_BYTES takes. */
export const INTAKE_BODY_SIZES = [1_000_000, 5_000_000, 25_000_000];

function rssOf(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** A message whose JSON body is `bytes` long, give or take a few: one attachment fills it. */
export function bodyOfSize(bytes: number): Buffer {
  const head = { to: 'intake@example.net', subject: `intake ${bytes}`, text: 'A large attachment.' };
  const shell = JSON.stringify({ ...head, attachments: [{ filename: 'file.bin', content: '' }] });
  const chars = Math.max(0, Math.floor((bytes - shell.length) / 4) * 4);
  const content = randomBytes((chars / 4) * 3).toString('base64');
  return Buffer.from(JSON.stringify({ ...head, attachments: [{ filename: 'file.bin', content }] }));
}

export async function intakeStall(target: IntakeTarget, sizes = INTAKE_BODY_SIZES): Promise<IntakeResult[]> {
  const results: IntakeResult[] = [];
  let warmedUp = false;
  // One body first, not counted: the first large body meets cold code (the JIT), as the other phases' warm-ups avoid.
  for (const size of [sizes[0]!, ...sizes]) {
    const body = bodyOfSize(size);
    // Let the previous message's garbage go before the baseline is read.
    await sleep(500);
    const rssBeforeMb = rssOf(target.pid);
    let peak = rssBeforeMb;
    const sampler = setInterval(() => (peak = Math.max(peak, rssOf(target.pid))), 10);
    await target.mailgateStall();
    await target.mailgateCpuStall();
    const delivered = target.nextDelivery();
    const t0 = performance.now();
    const res = await fetch(`${target.url}/api/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${target.key}`, 'content-type': 'application/json' },
      body,
    });
    const text = await res.text();
    const intakeMs = performance.now() - t0;
    if (res.status !== 202) throw new Error(`POST of ${body.length} bytes answered ${res.status}: ${text}`);
    const intakeStallMs = await target.mailgateStall();
    const intakeCpuStallMs = await target.mailgateCpuStall();
    const peakIntakeRssMb = Math.max(peak, rssOf(target.pid));
    await delivered;
    clearInterval(sampler);
    peak = Math.max(peak, rssOf(target.pid));
    if (!warmedUp) {
      warmedUp = true;
      await target.mailgateStall();
      continue;
    }
    results.push({
      bodyBytes: body.length,
      intakeStallMs,
      intakeCpuStallMs,
      intakeMs,
      deliveryStallMs: await target.mailgateStall(),
      rssBeforeMb,
      peakIntakeRssMb,
      peakRssMb: peak,
    });
  }
  return results;
}

export function printIntakeStall(results: IntakeResult[]): void {
  console.log('\nLarge JSON bodies (one attachment in base64), mailgate process, file store:');
  console.log(
    `  ${'body'.padEnd(12)} ${'POST to 202: stall, CPU (time)'.padStart(34)} ${'202 to delivery: stall'.padStart(24)} ${'RSS before → peak at 202, at delivery'.padStart(38)}`,
  );
  for (const r of results) {
    console.log(
      `  ${`${(r.bodyBytes / 1e6).toFixed(1)} MB`.padEnd(12)} ${`${r.intakeStallMs.toFixed(0)} ms, ${r.intakeCpuStallMs.toFixed(0)} ms (${r.intakeMs.toFixed(0)} ms)`.padStart(34)} ${`${r.deliveryStallMs.toFixed(0)} ms`.padStart(24)} ${`${r.rssBeforeMb.toFixed(0)} → ${r.peakIntakeRssMb.toFixed(0)}, ${r.peakRssMb.toFixed(0)} MB`.padStart(38)}`,
    );
  }
  console.log(
    `worst event-loop stall of large JSON bodies: ${Math.max(...results.map((r) => r.intakeStallMs)).toFixed(0)} ms from POST to 202 (longest step ${Math.max(...results.map((r) => r.intakeCpuStallMs)).toFixed(0)} ms of CPU)`,
  );
}
