import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { AppendFile, removeQuietly, syncFolder } from './append-file.js';
import { BLOB_MIN_CHARS, BlobFiles } from './blob-files.js';
import {
  blobLine,
  type Collection,
  deleteLine,
  journalLines,
  needsCompaction,
  putLine,
  readJournal,
  readOldLayout,
  type StoredDoc,
} from './file-collections.js';
import type { FileStoreState } from './file-open-state.js';
import type { FileSchedules } from './file-schedules.js';
import type { MemoryCounters } from './memory-counters.js';
import { checkCollection, checkName, compareIds, isCollectionName, lowerBound } from './names.js';
import {
  VersionConflictError,
  type Doc,
  type Documents,
  type ListOptions,
  type ScheduleMove,
  type WriteOptions,
} from './store.js';

/**
 * The embedded store's documents: every collection in memory (large values in blob files), each change a line of
 * the collection's journal (file-collections.ts). A write changes memory at once, so compare-and-set is exact
 * without waiting for the disk; its counter changes and schedule moves go with it (memory-counters.ts,
 * file-schedules.ts).
 */
export class FileDocuments implements Documents {
  readonly #dir: string;
  readonly #fsync: boolean;
  readonly #state: FileStoreState;
  readonly #schedules: FileSchedules;
  readonly #counters: MemoryCounters;
  readonly #blobs: BlobFiles;
  readonly #collections = new Map<string, Collection>();

  constructor(
    root: string,
    fsync: boolean,
    parts: { state: FileStoreState; schedules: FileSchedules; counters: MemoryCounters },
  ) {
    this.#dir = path.join(root, 'docs');
    this.#fsync = fsync;
    this.#state = parts.state;
    this.#schedules = parts.schedules;
    this.#counters = parts.counters;
    this.#blobs = new BlobFiles(path.join(root, 'blobs'), fsync);
  }

  /**
   * Reads every journal, migrating collections of the earlier layout first, rewrites journals that are mostly
   * history, and deletes blob files no current version names.
   */
  async load(): Promise<void> {
    const entries = await readdir(this.#dir, { withFileTypes: true });
    // The earlier layout first: a journal next to an old folder was written by a migration cut off before it
    // deleted the folder, so the journal is the newer of the two.
    const oldFolders: string[] = [];
    for (const entry of entries) {
      if (entry.isDirectory() && isCollectionName(entry.name)) {
        await readOldLayout(this.#collection(entry.name), path.join(this.#dir, entry.name));
        oldFolders.push(entry.name);
      }
    }
    for (const entry of entries) {
      const full = path.join(this.#dir, entry.name);
      if (entry.name.endsWith('.tmp')) {
        // A rewrite killed before its rename: the journal it was replacing is still complete.
        await removeQuietly(full);
        continue;
      }
      const name = entry.name.slice(0, -'.jsonl'.length);
      if (!entry.isFile() || !entry.name.endsWith('.jsonl') || !isCollectionName(name)) continue;
      await readJournal(this.#collection(name), full);
    }
    for (const name of oldFolders) {
      await this.#compact(this.#collection(name));
      await rm(path.join(this.#dir, name), { recursive: true, force: true });
      if (this.#fsync) await syncFolder(this.#dir);
    }
    for (const collection of this.#collections.values()) {
      if (needsCompaction(collection.lines, collection.docs.size)) await this.#compact(collection);
    }
    const live = new Set<string>();
    for (const collection of this.#collections.values())
      for (const doc of collection.docs.values()) if (doc.blob) live.add(doc.blob);
    await this.#blobs.sweep(live);
  }

  async get<T>(collection: string, id: string): Promise<Doc<T> | null> {
    checkCollection(collection);
    this.#state.assertOpen();
    const docs = this.#collections.get(collection)?.docs;
    // A blob file can be replaced between looking up its name and reading it: then look again.
    for (let attempt = 0; ; attempt++) {
      const stored = docs?.get(id);
      if (!stored) return null;
      try {
        return { id, version: stored.version, value: JSON.parse(await this.#json(stored)) as T };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || docs?.get(id) === stored || attempt > 3) throw err;
      }
    }
  }

  async put<T>(collection: string, id: string, value: T, options: WriteOptions = {}): Promise<Doc<T>> {
    checkCollection(collection);
    checkName('document id', id);
    this.#state.assertOpen();
    const json = JSON.stringify(value);
    if (json === undefined) throw new Error(`cannot store ${typeof value} in ${collection}/${id}: not JSON`);
    const moves = this.#schedules.checkMoves(options);
    const col = this.#collection(collection);
    const current = col.docs.get(id);
    const actual = current?.version ?? 0;
    if (options.ifVersion !== undefined && options.ifVersion !== actual)
      throw new VersionConflictError(collection, id, options.ifVersion, actual);
    this.#counters.apply(options);
    // Memory changes in this tick, so the next compare-and-set already sees this version.
    const version = actual + 1;
    const stored: StoredDoc = { version, json };
    col.docs.set(id, stored);
    if (!current) col.sortedIds = null;
    const written = this.#writeVersion(col, collection, id, stored, current);
    this.#scheduleAfter(moves, id, written);
    await written;
    return parsedOnRead<T>(id, version, json);
  }

  async delete(collection: string, id: string, options: WriteOptions = {}): Promise<boolean> {
    checkCollection(collection);
    const moves = this.#schedules.checkMoves(options);
    this.#state.assertOpen();
    const col = this.#collections.get(collection);
    const current = col?.docs.get(id);
    const actual = current?.version ?? 0;
    if (options.ifVersion !== undefined && options.ifVersion !== actual)
      throw new VersionConflictError(collection, id, options.ifVersion, actual);
    if (!col || !current) {
      await Promise.all(moves.map((move) => this.#schedules.applyMove(move, id)));
      return false;
    }
    this.#counters.apply(options);
    col.docs.delete(id);
    col.sortedIds = null;
    const written = this.#afterReplace(this.#writeLine(col, deleteLine(id)), current);
    this.#scheduleAfter(moves, id, written);
    await written;
    return true;
  }

  async list<T>(collection: string, options: ListOptions = {}): Promise<Doc<T>[]> {
    checkCollection(collection);
    this.#state.assertOpen();
    const col = this.#collections.get(collection);
    if (!col) return [];
    col.sortedIds ??= [...col.docs.keys()].sort(compareIds);
    const prefix = options.prefix ?? '';
    const ids = col.sortedIds;
    const limit = options.limit ?? Infinity;
    const after = options.after !== undefined && options.after > prefix ? options.after : prefix;
    // [start, end): the ids above `after` (or from `prefix`) and below `before`; the prefix check ends the walk.
    const start = after ? lowerBound(ids, after, compareIds) : 0;
    let end = options.before !== undefined ? lowerBound(ids, options.before, compareIds) : ids.length;
    // Ids are text: none sorts above the prefix followed by the highest UTF-16 unit.
    if (prefix) end = Math.min(end, lowerBound(ids, `${prefix}\uffff`, compareIds));
    const out: Doc<T>[] = [];
    const take = async (id: string): Promise<void> => {
      const stored = col.docs.get(id);
      if (!stored) return; // deleted while an earlier blob was read
      const doc =
        stored.json !== null
          ? { id, version: stored.version, value: JSON.parse(stored.json) as T }
          : await this.get<T>(collection, id);
      if (doc) out.push(doc);
    };
    if (options.descending) {
      for (let i = end - 1; i >= start && out.length < limit; i--) {
        const id = ids[i]!;
        if (id === options.after) break;
        if (id.startsWith(prefix)) await take(id);
        else if (id < prefix) break;
      }
      return out;
    }
    for (let i = start; i < end && out.length < limit; i++) {
      const id = ids[i]!;
      if (!id.startsWith(prefix)) break;
      if (id === options.after) continue;
      await take(id);
    }
    return out;
  }

  async collections(): Promise<string[]> {
    this.#state.assertOpen();
    return [...this.#collections]
      .filter(([, c]) => c.docs.size > 0)
      .map(([name]) => name)
      .sort(compareIds);
  }

  /** Rewrites every journal that holds a line no longer current. */
  async compactStale(): Promise<void> {
    for (const collection of this.#collections.values()) {
      if (collection.lines > collection.docs.size) await this.#compact(collection);
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.#collections.values()].map((c) => c.journal.close()));
  }

  #collection(name: string): Collection {
    let collection = this.#collections.get(name);
    if (!collection) {
      const journal = new AppendFile(path.join(this.#dir, `${name}.jsonl`), this.#fsync);
      collection = { docs: new Map(), sortedIds: null, journal, lines: 0 };
      this.#collections.set(name, collection);
    }
    return collection;
  }

  /**
   * The schedule moves of a document write: in memory now, on disk after the document's line. The write is
   * acknowledged once its document line is written, without waiting for these: schedule lines are never synced
   * and the queue rebuilds its schedules from the documents at start (durableIndexes false), so waiting only
   * added a write to every put's latency. A failed schedule write still stops the store (FileStoreState).
   */
  #scheduleAfter(moves: ScheduleMove[], id: string, written: Promise<void>): void {
    for (const move of moves) this.#schedules.applyMove(move, id, written).catch(() => undefined);
  }

  /** A version's JSON, from memory or its blob file. */
  #json(stored: StoredDoc): Promise<string> | string {
    return stored.json ?? this.#blobs.read(stored.blob!);
  }

  /**
   * Writes a new version's line (for a large value: its blob file first, and a line naming it); once written, a
   * large value leaves memory and the blob of the version it replaced is deleted.
   */
  #writeVersion(
    col: Collection,
    collection: string,
    id: string,
    stored: StoredDoc,
    replaced: StoredDoc | undefined,
  ): Promise<void> {
    let written: Promise<void>;
    if (stored.json !== null && stored.json.length >= BLOB_MIN_CHARS) {
      stored.blob = BlobFiles.nameOf(collection, id, stored.version);
      written = this.#writeLine(
        col,
        blobLine(id, stored.version, stored.blob),
        this.#blobs.write(stored.blob, stored.json),
      );
      void written.then(
        () => (stored.json = null),
        () => undefined,
      );
    } else {
      written = this.#writeLine(col, putLine(id, stored.version, stored.json!));
    }
    return this.#afterReplace(written, replaced);
  }

  /** Deletes the blob of a version that is no longer current, once the line that replaced it is written. */
  #afterReplace(written: Promise<void>, replaced: StoredDoc | undefined): Promise<void> {
    if (!replaced?.blob) return written;
    const blob = replaced.blob;
    return written.then(() => this.#blobs.remove(blob));
  }

  /** Queues a journal line (after `after`); resolves once it is written. Rewrites the journal when it is mostly history. */
  #writeLine(collection: Collection, line: string, after?: Promise<void>): Promise<void> {
    collection.lines += 1;
    const written = this.#state.guard(collection.journal, collection.journal.append(line, after));
    // Not awaited by the writer: its line is in the rewritten journal anyway (a failure stops the store).
    if (needsCompaction(collection.lines, collection.docs.size)) this.#compact(collection).catch(() => undefined);
    return written;
  }

  /** Rewrites the journal from memory, after the lines already queued; lines queued later follow it. */
  #compact(collection: Collection): Promise<void> {
    collection.lines = collection.docs.size;
    return this.#state.guard(
      collection.journal,
      collection.journal.rewrite(() => journalLines(collection.docs)),
    );
  }
}

/**
 * The written document, parsed from its JSON (a copy the caller may change) only if the caller reads its value:
 * most writers want the version alone, and a parse per write was a measurable share of the queue's CPU.
 */
function parsedOnRead<T>(id: string, version: number, json: string): Doc<T> {
  let value: T | undefined;
  let parsed = false;
  return {
    id,
    version,
    get value(): T {
      if (!parsed) {
        value = JSON.parse(json) as T;
        parsed = true;
      }
      return value as T;
    },
    set value(next: T) {
      value = next;
      parsed = true;
    },
  };
}
