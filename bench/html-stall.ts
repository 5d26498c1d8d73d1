/**
 * The event-loop stall of HTML-only messages (the text part is derived from the HTML): crafted bodies that
 * made a backtracking conversion take seconds to minutes, and an ordinary newsletter. Each is converted on
 * its own (deriveTextPart, as the queue does on accepting it), then POSTed to /api/v1/messages of a running
 * mailgate and followed until the sink has it. A stall is the largest event-loop delay
 * (perf_hooks.monitorEventLoopDelay): of this process around the conversion, and of the mailgate process (its
 * own, sampled every 10 ms) from POST to delivery
 * (which adds JSON parsing, validation, storing, MIME encoding of a megabyte, and the machine's other load).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { deriveTextPart } from '../src/mail/html-text.js';

export interface StallTarget {
  url: string;
  key: string;
  /** Resolves once the sink has received one more message than when it was called. */
  nextDelivery(): Promise<void>;
  /** The worst event-loop delay of the mailgate process (its own process) since the last call, in ms. */
  mailgateStall(): Promise<number>;
}

export interface StallResult {
  label: string;
  chars: number;
  /** Around deriveTextPart alone (wall time and CPU time: on a loaded machine the stall includes waiting for a core). */
  conversionStallMs: number;
  conversionMs: number;
  conversionCpuMs: number;
  /** From the POST to delivery. */
  stallMs: number;
  totalMs: number;
}

/** The worst event-loop delay while `work` runs, in ms, and how long it took. */
async function stallOf(work: () => Promise<unknown>): Promise<{ stallMs: number; ms: number; cpuMs: number }> {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  // The histogram records once the event loop has turned; a stall right at the start would be missed.
  await sleep(2);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await work();
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  await sleep(2);
  histogram.disable();
  return { stallMs: histogram.max / 1e6, ms, cpuMs: (cpu.user + cpu.system) / 1000 };
}

/** The crafted bodies at `chars` characters (the API accepts up to 1,000,000 in `html`). */
export function craftedBodies(chars: number): Array<[string, string]> {
  const fill = (unit: string) => unit.repeat(Math.floor(chars / unit.length));
  return [
    ['a run of <', fill('<')],
    ['unclosed tags', fill('<a')],
    ['unclosed href values', fill('<a href="')],
    ['spaces without a line end', `${' '.repeat(chars - 1)}x`],
    ['unclosed scripts', fill('<script>')],
    [
      'newsletter',
      fill('<p>Hello <b>reader</b> &amp; welcome: <a href="https://example.com/x?a=1&amp;b=2">read more</a></p>\n'),
    ],
  ];
}

export async function htmlStall(target: StallTarget, bodies: Array<[string, string]>): Promise<StallResult[]> {
  const results: StallResult[] = [];
  for (const [label, html] of bodies) {
    const conversion = await stallOf(() => deriveTextPart(html));
    await target.mailgateStall();
    const delivery = await stallOf(async () => {
      const delivered = target.nextDelivery();
      const res = await fetch(`${target.url}/api/v1/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${target.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ to: 'stall@example.net', subject: `stall: ${label}`, html }),
      });
      if (res.status !== 202) throw new Error(`POST of "${label}" answered ${res.status}: ${await res.text()}`);
      await delivered;
    });
    results.push({
      label,
      chars: html.length,
      conversionStallMs: conversion.stallMs,
      conversionMs: conversion.ms,
      conversionCpuMs: conversion.cpuMs,
      stallMs: await target.mailgateStall(),
      totalMs: delivery.ms,
    });
  }
  return results;
}

export function printHtmlStall(stalls: StallResult[]): void {
  console.log(
    '\nHTML-only messages (text part derived from html), worst event-loop stall of the mailgate process, file store:',
  );
  console.log(
    `  ${'body'.padEnd(44)} ${'conversion alone: stall (wall, CPU)'.padStart(36)}   ${'POST to delivery: stall (wall)'.padStart(30)}`,
  );
  for (const s of stalls) {
    const conversion = `${s.conversionStallMs.toFixed(1)} ms (${s.conversionMs.toFixed(0)} ms, ${s.conversionCpuMs.toFixed(0)} ms)`;
    console.log(
      `  ${`${s.label} (${s.chars} chars)`.padEnd(44)} ${conversion.padStart(36)}   ${`${s.stallMs.toFixed(1)} ms (${s.totalMs.toFixed(0)} ms)`.padStart(30)}`,
    );
  }
  const worst = (f: (s: (typeof stalls)[number]) => number) => Math.max(...stalls.map(f)).toFixed(1);
  console.log(
    `worst event-loop stall of HTML-only messages: ${worst((s) => s.conversionStallMs)} ms converting the text part, ${worst((s) => s.stallMs)} ms from POST to delivery`,
  );
}
