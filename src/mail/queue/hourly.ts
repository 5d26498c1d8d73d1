import type { CounterChange, Counters } from '../../store/store.js';
import type { MessageDoc, MessageStatus } from './model.js';

/**
 * Outcomes per hour (sent, deferred, failed) for the queue page's chart. Each outcome write carries a counter
 * increment for its hour in the same atomic step as the write (like the queue's place counters), so the chart
 * reads 3 × 168 counters instead of every message. A deferral counts every time it happens (it is an attempt
 * that will be retried); sent and failed count once per message. Counters are named by the hour since the epoch,
 * so they never need resetting; on Redis that is one small hash field per status and hour.
 */

export const HOUR_MS = 3_600_000;
export const OUTCOMES = ['sent', 'deferred', 'failed'] as const;
export type Outcome = (typeof OUTCOMES)[number];

export function hourCounter(outcome: Outcome, hour: number): string {
  return `mail-hour:${outcome}:${hour}`;
}

function isOutcome(status: MessageStatus): status is Outcome {
  return (OUTCOMES as readonly string[]).includes(status);
}

/** When the outcome happened: the send for sent messages, the status write otherwise. */
function outcomeAt(m: MessageDoc): number {
  return m.status === 'sent' ? (m.sentAt ?? m.updatedAt) : m.updatedAt;
}

/** The counter change of a status write that records a delivery outcome (none for any other write). */
export function hourlyChanges(value: MessageDoc): CounterChange[] {
  if (!isOutcome(value.status)) return [];
  return [{ counter: hourCounter(value.status, Math.floor(outcomeAt(value) / HOUR_MS)), delta: 1 }];
}

export interface HourlyOutcomes {
  /** Start of each hour (ms), oldest first. */
  hours: number[];
  counts: Record<Outcome, number[]>;
}

/** The last `hours` hours up to and including the current one. One counters read. */
export async function readHourly(store: Counters, now: number, hours = 168): Promise<HourlyOutcomes> {
  const last = Math.floor(now / HOUR_MS);
  const list = Array.from({ length: hours }, (_, i) => last - hours + 1 + i);
  const names = OUTCOMES.flatMap((o) => list.map((h) => hourCounter(o, h)));
  const values = await store.counters(names);
  const counts = Object.fromEntries(
    OUTCOMES.map((o, i) => [o, values.slice(i * hours, (i + 1) * hours).map((v) => Math.max(0, v))]),
  ) as Record<Outcome, number[]>;
  return { hours: list.map((h) => h * HOUR_MS), counts };
}

/**
 * Rebuilding the counters from the messages, for the embedded store (its counters live in memory). Sent
 * messages are kept for the retention, failed ones until deleted; of a waiting message only its last deferral
 * is known, so earlier deferrals of a message are lost across a restart of the embedded store.
 */
export class HourTally {
  readonly #counts = new Map<string, number>();

  add(m: MessageDoc): void {
    let change: CounterChange | undefined;
    if (m.status === 'sent' || m.status === 'failed') change = hourlyChanges(m)[0];
    else if (m.lastError && m.status !== 'held')
      change = { counter: hourCounter('deferred', Math.floor(m.lastError.at / HOUR_MS)), delta: 1 };
    if (change) this.#counts.set(change.counter, (this.#counts.get(change.counter) ?? 0) + 1);
  }

  /** Adds the tally to what the counters hold now (writes made since the start counted on top). */
  async save(store: Counters): Promise<void> {
    const names = [...this.#counts.keys()];
    if (!names.length) return;
    const current = await store.counters(names);
    await store.setCounters(Object.fromEntries(names.map((n, i) => [n, (current[i] ?? 0) + this.#counts.get(n)!])));
  }
}
