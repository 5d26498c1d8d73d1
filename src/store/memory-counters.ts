import { checkCounterChanges, CounterLimitError, type Counters, type WriteOptions } from './store.js';

/**
 * The embedded store's counters, in memory only: their owners rebuild them from the documents at start (the
 * store says so with `durableIndexes: false`; the mail queue does it).
 */
export class MemoryCounters implements Counters {
  readonly #values = new Map<string, number>();
  readonly #assertOpen: () => void;

  constructor(assertOpen: () => void) {
    this.#assertOpen = assertOpen;
  }

  /** Applies a write's counter changes, or refuses the write (before anything changed) when one passes its max. */
  apply(options: WriteOptions): void {
    const changes = checkCounterChanges(options);
    for (const { counter, delta, max } of changes) {
      const current = this.#values.get(counter) ?? 0;
      if (max !== undefined && delta > 0 && current + delta > max) throw new CounterLimitError(counter, current, max);
    }
    for (const { counter, delta } of changes) this.#values.set(counter, (this.#values.get(counter) ?? 0) + delta);
  }

  async counters(names: string[]): Promise<number[]> {
    this.#assertOpen();
    return names.map((name) => this.#values.get(name) ?? 0);
  }

  async setCounters(values: Record<string, number>): Promise<void> {
    this.#assertOpen();
    for (const [name, value] of Object.entries(values)) this.#values.set(name, value);
  }
}
