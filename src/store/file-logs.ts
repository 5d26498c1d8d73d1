import path from 'node:path';
import { AppendFile, jsonlFilesIn, readJsonLines } from './append-file.js';
import type { FileStoreState } from './file-open-state.js';
import { checkFileBackedName, encodeFileName } from './file-names.js';
import { formatLogId } from './log-ids.js';
import { checkName, compareIds, lowerBound } from './names.js';
import type { LogEntry, Logs } from './store.js';

interface LogState {
  entries: { id: string; json: string }[];
  lastMs: number;
  seq: number;
  file: AppendFile;
}

/** The embedded store's logs: `logs/<encoded name>.jsonl`, one {"id","entry"} per line, all held in memory. */
export class FileLogs implements Logs {
  readonly #dir: string;
  readonly #fsync: boolean;
  readonly #state: FileStoreState;
  readonly #logs = new Map<string, LogState>();

  constructor(dir: string, fsync: boolean, state: FileStoreState) {
    this.#dir = dir;
    this.#fsync = fsync;
    this.#state = state;
  }

  async load(): Promise<void> {
    for (const { name, file } of await jsonlFilesIn(this.#dir)) {
      const log = this.#log(name);
      for (const line of await readJsonLines(file)) {
        const { id, entry } = line as { id: string; entry: unknown };
        log.entries.push({ id, json: JSON.stringify(entry) });
      }
      const last = log.entries.at(-1);
      if (last) {
        const [ms = '0', seq = '0'] = last.id.split('-');
        log.lastMs = Number(ms);
        log.seq = Number(seq);
      }
    }
  }

  async append<T>(log: string, entry: T): Promise<string> {
    checkFileBackedName('log name', log);
    this.#state.assertOpen();
    const json = JSON.stringify(entry);
    if (json === undefined) throw new Error(`cannot append ${typeof entry} to log ${log}: not JSON`);
    const state = this.#log(log);
    const now = Date.now();
    // Ids stay monotonic even if the clock steps back.
    if (now > state.lastMs) {
      state.lastMs = now;
      state.seq = 0;
    } else {
      state.seq += 1;
    }
    const id = formatLogId(state.lastMs, state.seq);
    state.entries.push({ id, json });
    await state.file.append(`{"id":"${id}","entry":${json}}\n`);
    return id;
  }

  async readLog<T>(log: string, options: { before?: string; after?: string; limit: number }): Promise<LogEntry<T>[]> {
    checkName('log name', log);
    this.#state.assertOpen();
    const entries = this.#logs.get(log)?.entries ?? [];
    const byId = (a: { id: string }, b: { id: string }): number => compareIds(a.id, b.id);
    // Exclusive bounds: [after+1, before-1].
    let end =
      options.before === undefined ? entries.length : lowerBound(entries, { id: options.before, json: '' }, byId);
    const start =
      options.after === undefined ? 0 : lowerBound(entries, { id: `${options.after}\u0000`, json: '' }, byId);
    const out: LogEntry<T>[] = [];
    while (end > start && out.length < options.limit) {
      const item = entries[--end]!;
      out.push({ id: item.id, entry: JSON.parse(item.json) as T });
    }
    return out;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#logs.values()].map((s) => s.file.close()));
  }

  #log(name: string): LogState {
    let state = this.#logs.get(name);
    if (!state) {
      const file = new AppendFile(path.join(this.#dir, `${encodeFileName(name)}.jsonl`), this.#fsync);
      state = { entries: [], lastMs: 0, seq: 0, file };
      this.#logs.set(name, state);
    }
    return state;
  }
}
