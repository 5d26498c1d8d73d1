import path from 'node:path';
import { AppendFile, jsonlFilesIn, readJsonLines } from './append-file.js';
import type { FileStoreState } from './file-open-state.js';
import { checkFileBackedName, encodeFileName } from './file-names.js';
import { checkName, compareIds, lowerBound } from './names.js';
import { scheduleMoves, type ScheduledEntry, type ScheduleMove, type Schedules, type WriteOptions } from './store.js';

interface ScheduleState {
  due: Map<string, number>;
  /** Ascending by (dueAt, id). */
  order: { dueAt: number; id: string }[];
  /** Lines in the file since the last compaction. */
  lines: number;
  file: AppendFile;
}

const MAX_CHECKED_NAMES = 1000;

function compareDue(a: { dueAt: number; id: string }, b: { dueAt: number; id: string }): number {
  return a.dueAt - b.dueAt || compareIds(a.id, b.id);
}

/**
 * The embedded store's schedules: `schedules/<encoded name>.jsonl` holds the operations (`["s", id, dueAt]`,
 * `["u", id]`), replayed and compacted at open; the entries are held in memory in due-time order.
 */
export class FileSchedules implements Schedules {
  readonly #dir: string;
  readonly #fsync: boolean;
  readonly #state: FileStoreState;
  readonly #schedules = new Map<string, ScheduleState>();
  /** Queue names already checked: a handful, named by every write that moves a message. */
  readonly #checkedNames = new Set<string>();

  constructor(dir: string, fsync: boolean, state: FileStoreState) {
    this.#dir = dir;
    this.#fsync = fsync;
    this.#state = state;
  }

  async load(): Promise<void> {
    for (const { name, file } of await jsonlFilesIn(this.#dir)) {
      const state = this.#schedule(name);
      for (const op of (await readJsonLines(file)) as [string, string, number?][]) {
        if (op[0] === 's' && typeof op[2] === 'number') this.#setDue(state, op[1], op[2]);
        else if (op[0] === 'u') this.#removeDue(state, op[1]);
      }
      await this.#compact(state);
    }
  }

  /** The `schedule` option's moves, checked before anything changes. */
  checkMoves(options: WriteOptions): ScheduleMove[] {
    const moves = scheduleMoves(options);
    for (const { queue, dueAt } of moves) {
      this.#checkQueueName(queue);
      if (dueAt !== null && !Number.isFinite(dueAt))
        throw new Error(`schedule ${queue}: due time must be a finite number of ms or null, got ${dueAt}`);
    }
    return moves;
  }

  /**
   * One move of the `schedule` option of a document write: memory changes in the same tick as the document's,
   * and with `after` (the document's line) the schedule line is written only once that one is.
   */
  applyMove(option: ScheduleMove, id: string, after?: Promise<void>): Promise<void> {
    const state = this.#schedule(option.queue);
    if (option.dueAt === null) {
      if (!state.due.has(id)) return Promise.resolve();
      this.#removeDue(state, id);
      return this.#record(state, [['u', id]], after);
    }
    this.#setDue(state, id, option.dueAt);
    return this.#record(state, [['s', id, option.dueAt]], after);
  }

  async schedule(queue: string, id: string, dueAt: number, options?: { onlyIfAbsent?: boolean }): Promise<void> {
    this.#checkQueueName(queue);
    checkName('scheduled id', id);
    if (!Number.isFinite(dueAt))
      throw new Error(`schedule ${queue}/${id}: due time must be a finite number of ms, got ${dueAt}`);
    this.#state.assertOpen();
    const state = this.#schedule(queue);
    if (options?.onlyIfAbsent && state.due.has(id)) return;
    this.#setDue(state, id, dueAt);
    await this.#record(state, [['s', id, dueAt]]);
  }

  async unschedule(queue: string, id: string): Promise<void> {
    this.#state.assertOpen();
    const state = this.#schedules.get(queue);
    if (!state?.due.has(id)) return;
    this.#removeDue(state, id);
    await this.#record(state, [['u', id]]);
  }

  async claimDue(queue: string, now: number, leaseMs: number, limit: number): Promise<string[]> {
    this.#state.assertOpen();
    const state = this.#schedules.get(queue);
    if (!state || limit <= 0) return [];
    let count = 0;
    while (count < state.order.length && count < limit && state.order[count]!.dueAt <= now) count++;
    if (count === 0) return [];
    const claimed = state.order.splice(0, count).map((item) => item.id);
    for (const id of claimed) state.due.delete(id);
    const leaseEnd = now + leaseMs;
    for (const id of claimed) this.#setDue(state, id, leaseEnd);
    await this.#record(
      state,
      claimed.map((id) => ['s', id, leaseEnd]),
    );
    return claimed;
  }

  async scheduled(queue: string, options: { limit: number; newestFirst?: boolean }): Promise<ScheduledEntry[]> {
    checkName('queue name', queue);
    this.#state.assertOpen();
    const order = this.#schedules.get(queue)?.order ?? [];
    const limit = Math.max(0, Math.min(Math.floor(options.limit) || 0, order.length));
    const slice = options.newestFirst ? order.slice(order.length - limit).reverse() : order.slice(0, limit);
    return slice.map(({ id, dueAt }) => ({ id, dueAt }));
  }

  async scheduleStats(queue: string): Promise<{ count: number; earliestDueAt: number | null }> {
    this.#state.assertOpen();
    const state = this.#schedules.get(queue);
    return { count: state?.due.size ?? 0, earliestDueAt: state?.order[0]?.dueAt ?? null };
  }

  async close(): Promise<void> {
    await Promise.all([...this.#schedules.values()].map((s) => s.file.close()));
  }

  #schedule(name: string): ScheduleState {
    let state = this.#schedules.get(name);
    if (!state) {
      // Not synced per batch: the store's traits say schedules are rebuilt from the documents at start
      // (`durableIndexes: false`), and what a power loss takes from this file is rebuilt with them. A process crash
      // takes nothing written, and a rewrite is still synced before its rename.
      const file = new AppendFile(path.join(this.#dir, `${encodeFileName(name)}.jsonl`), this.#fsync, undefined, {
        syncAppends: false,
      });
      state = { due: new Map(), order: [], lines: 0, file };
      this.#schedules.set(name, state);
    }
    return state;
  }

  #checkQueueName(queue: string): void {
    if (this.#checkedNames.has(queue)) return;
    checkFileBackedName('queue name', queue);
    // Bounded, whatever callers name: past the limit names are checked each time again.
    if (this.#checkedNames.size < MAX_CHECKED_NAMES) this.#checkedNames.add(queue);
  }

  #setDue(state: ScheduleState, id: string, dueAt: number): void {
    this.#removeDue(state, id);
    const item = { dueAt, id };
    state.order.splice(lowerBound(state.order, item, compareDue), 0, item);
    state.due.set(id, dueAt);
  }

  #removeDue(state: ScheduleState, id: string): void {
    const dueAt = state.due.get(id);
    if (dueAt === undefined) return;
    const index = lowerBound(state.order, { dueAt, id }, compareDue);
    state.order.splice(index, 1);
    state.due.delete(id);
  }

  /** Queues schedule operations; with `after`, they are written only once that (document) write is. */
  #record(state: ScheduleState, ops: unknown[], after?: Promise<void>): Promise<void> {
    state.lines += ops.length;
    const written = this.#state.guard(
      state.file,
      state.file.append(ops.map((op) => `${JSON.stringify(op)}\n`).join(''), after),
    );
    // The operation file only grows; rewrite it from memory once it is mostly history.
    if (state.lines > 1000 && state.lines > 4 * state.due.size) this.#compact(state).catch(() => undefined);
    return written;
  }

  /**
   * Rewrites the schedule file with the entries as they are now. Taken now, not when the rewrite runs: the
   * rewrite is written in pieces while `order` keeps changing, and every change made from here on is in a
   * line appended after it, whose document line (for a `schedule` write option) has reached the disk first.
   */
  #compact(state: ScheduleState): Promise<void> {
    state.lines = state.due.size;
    const entries = state.order.slice();
    return this.#state.guard(
      state.file,
      state.file.rewrite(function* () {
        for (const { dueAt, id } of entries) yield `${JSON.stringify(['s', id, dueAt])}\n`;
      }),
    );
  }
}
