import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type session from 'express-session';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import { AppendFile, forEachJsonLine, readJsonLines, removeQuietly, syncFolder } from './append-file.js';
import { BLOB_MIN_CHARS, BlobFiles } from './blob-files.js';
import { forgetDirLock, takeDirLock } from './dir-lock.js';
import { formatLogId } from './log-ids.js';
import { createPruningSessionStore } from './memory-session-store.js';
import {
  checkCounterChanges,
  CounterLimitError,
  StoreUnavailableError,
  VersionConflictError,
  type Doc,
  type Lock,
  type LogEntry,
  scheduleMoves,
  type RateLimiterOptions,
  type ScheduledEntry,
  type ScheduleMove,
  type Store,
  type WriteOptions,
} from './store.js';

/**
 * The embedded store: plain files under `<dir>/store/`, one process at a time.
 *
 *   docs/<collection>.jsonl          the collection's journal, one line per change: {"id","version","value"}
 *                                    for a put, {"id","deleted":true} for a delete; the last line of an id wins
 *   logs/<encoded name>.jsonl        append-only log, one {"id","entry"} per line
 *   schedules/<encoded name>.jsonl   schedule operations, replayed and compacted at open
 *   .lock                            pid of the process that has the folder open
 *
 * Everything but large values is held in memory (loaded at open), so most reads never touch the disk; large
 * values (message bodies) are in blob files read on demand (blob-files.ts), named by their journal lines
 * ({"id","version","blob"}). A put or delete changes memory at once, so compare-and-set is exact without
 * waiting for the disk, then queues its line and resolves once the line is written. Lines queued while a write
 * is in flight go out together in the next one (group commit): a busy collection costs one write call per
 * batch, not a file creation per document.
 *
 * Crash safety: files are only appended to, except for rewrites (below), which go to a temp file renamed
 * over the old one. A kill -9 can tear the last line of a file; it is cut off at open, and every write that
 * was acknowledged is in the lines before it. A read can see a write whose line is not on disk yet; if the
 * process dies before the line is written, that write is lost, but it had not been acknowledged either.
 * When a write fails (disk full, I/O error), part of its line may be in the file and memory is ahead of the
 * disk: from then on the store refuses every operation, ping() included (StoreUnavailableError naming the file
 * and the reason, so /readyz turns 503), instead of appending after a partial line. Restarting once the disk
 * is fixed cuts the partial line off; writes that were never acknowledged are not there.
 *
 * The lines of a `schedule` write option go to the schedule files only after the document's line is written:
 * a crash in between leaves the document changed and its schedules not (or only some of them), as with
 * separate writes (the file-per-document layout had the same window), never a schedule change whose document
 * write was lost. The mail queue closes that window by putting every message back in the schedules of its
 * status at start.
 *
 * A journal is rewritten from memory when it has more than 1000 lines and over twice as many lines as live
 * documents (also at open), and at close when it holds any line that is no longer current, so superseded
 * versions and deleted documents stay in the journal only until the next clean stop or compact() (which an
 * encryption key rotation calls, so old ciphertexts do not stay on disk). Lines queued while a rewrite waits are also appended after it; replaying a line twice
 * changes nothing. Leftover temp files (`*.tmp`) are deleted at open and never read.
 *
 * Data folders of the earlier layout (docs/<collection>/<encoded id>.json, one file per document) are
 * migrated at open: the old files are loaded, then the journal if there is one (it is newer: a migration was
 * cut off), the journal is rewritten from memory, and only then are the old files and folder deleted.
 *
 * The service opens the store with `{fsync: true}` unless MAILGATE_FSYNC=off: every batch of lines is then
 * synced before its writers are answered, and the folder after a file is created or renamed, so a power failure
 * loses nothing acknowledged. Without it (the option's default, for tools and tests) a killed process still
 * loses nothing acknowledged (the kernel holds the written pages); only a power failure or kernel crash can.
 */

export interface FileStoreOptions {
  /** fsync every write batch before answering (see above). Default false; MAILGATE_FSYNC=always sets it. */
  fsync?: boolean;
  /** How often the embedded session store drops expired sessions. Default 60 s. */
  sessionPruneEveryMs?: number;
  /** Receives errors thrown by pub/sub handlers (they never crash the process) and the write failure that stops the store. */
  log?: { warn(obj: object, msg: string): void };
}

const COLLECTION_NAME = /^[a-z0-9_-]+$/;
const MAX_FILE_NAME = 200;
/** A journal is rewritten once it has more lines than this and over twice as many as live documents. */
const COMPACT_MIN_LINES = 1000;

interface StoredDoc {
  version: number;
  /**
   * The value as JSON text: every read parses a fresh copy, so callers never share the cache. Null for a large
   * value once its blob file and journal line are written: it is read from the file then.
   */
  json: string | null;
  /** The blob file of a large value (blob-files.ts). */
  blob?: string;
}

interface Collection {
  docs: Map<string, StoredDoc>;
  sortedIds: string[] | null;
  journal: AppendFile;
  /** Lines in the journal, queued ones included, since it was last rewritten. */
  lines: number;
}

/** A journal line as read back: a put carries version and value, a delete `deleted: true`. */
interface JournalLine {
  id?: unknown;
  version?: unknown;
  value?: unknown;
  blob?: unknown;
  deleted?: unknown;
}

function putLine(id: string, version: number, json: string): string {
  return `{"id":${JSON.stringify(id)},"version":${version},"value":${json}}\n`;
}

function blobLine(id: string, version: number, blob: string): string {
  return `{"id":${JSON.stringify(id)},"version":${version},"blob":${JSON.stringify(blob)}}\n`;
}

/** A version whose blob file may not be written yet is rewritten in full: a rewritten line never waits for a file. */
function* journalLines(docs: Map<string, StoredDoc>): Generator<string> {
  for (const [id, doc] of docs) yield doc.json !== null ? putLine(id, doc.version, doc.json) : blobLine(id, doc.version, doc.blob!);
}

function needsCompaction(lines: number, live: number): boolean {
  return lines > COMPACT_MIN_LINES && lines > 2 * live;
}

interface LogState {
  entries: { id: string; json: string }[];
  lastMs: number;
  seq: number;
  file: AppendFile;
}

interface ScheduleState {
  due: Map<string, number>;
  /** Ascending by (dueAt, id). */
  order: { dueAt: number; id: string }[];
  /** Lines in the file since the last compaction. */
  lines: number;
  file: AppendFile;
}

/**
 * A file name for an id: `a-z 0-9 _ -` and inner dots kept, every other byte as `%XX` (so it decodes
 * with decodeURIComponent). Upper-case letters are escaped too, because macOS and Windows file systems
 * ignore case and `msg_aB` and `msg_Ab` must not share a file.
 */
export function encodeFileName(id: string): string {
  let out = '';
  for (const byte of Buffer.from(id, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[a-z0-9_-]/.test(c) || (c === '.' && out.length > 0) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  // Long ids get a hashed name; the id itself is inside the file, which is what counts when loading.
  return out.length <= MAX_FILE_NAME ? out : `~${createHash('sha256').update(id).digest('hex')}`;
}

function checkCollection(collection: string): void {
  if (!COLLECTION_NAME.test(collection)) throw new Error(`invalid collection name "${collection}" (expected [a-z0-9_-]+)`);
}

function checkName(kind: string, name: string): void {
  if (name.length === 0 || name.includes('\0')) throw new Error(`invalid ${kind} "${name}"`);
}

/** Log and queue names become file names that are decoded back at open, so they must not be hashed. */
function checkFileBackedName(kind: string, name: string): void {
  checkName(kind, name);
  if (encodeFileName(name).startsWith('~')) throw new Error(`${kind} "${name.slice(0, 40)}…" is too long`);
}

/** The `schedule` option's moves, checked before anything changes. */
function checkScheduleOption(options: WriteOptions): ScheduleMove[] {
  const moves = scheduleMoves(options);
  for (const { queue, dueAt } of moves) {
    checkFileBackedName('queue name', queue);
    if (dueAt !== null && !Number.isFinite(dueAt)) throw new Error(`schedule ${queue}: due time must be a finite number of ms or null, got ${dueAt}`);
  }
  return moves;
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareDue(a: { dueAt: number; id: string }, b: { dueAt: number; id: string }): number {
  return a.dueAt - b.dueAt || compareIds(a.id, b.id);
}

function lowerBound<T>(items: readonly T[], target: T, compare: (a: T, b: T) => number): number {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compare(items[mid]!, target) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export async function createFileStore(dir: string, options: FileStoreOptions = {}): Promise<Store> {
  const storeDir = path.join(path.resolve(dir), 'store');
  await mkdir(storeDir, { recursive: true, mode: 0o700 });
  const lockPath = await takeDirLock(storeDir);
  try {
    const store = new FileStore(storeDir, lockPath, options);
    await store.load();
    return store;
  } catch (err) {
    forgetDirLock(storeDir);
    await removeQuietly(lockPath);
    throw err;
  }
}

class FileStore implements Store {
  readonly kind = 'file' as const;
  readonly #root: string;
  readonly #lockPath: string;
  readonly #fsync: boolean;
  readonly #sessionPruneEveryMs: number;
  readonly #collections = new Map<string, Collection>();
  readonly #logs = new Map<string, LogState>();
  readonly #schedules = new Map<string, ScheduleState>();
  readonly #locks = new Map<string, { owner: string; expiresAt: number }>();
  /** Kept in memory only: their owners rebuild them from the documents at start (the mail queue does). */
  readonly #counters = new Map<string, number>();
  readonly #blobs: BlobFiles;
  readonly #events = new EventEmitter();
  readonly #sessionStores: { stopPruning(): void }[] = [];
  readonly #logger: FileStoreOptions['log'];
  #closed = false;
  /** Set by the first failed write: from then on every operation throws it. */
  #failure: StoreUnavailableError | null = null;

  constructor(root: string, lockPath: string, options: FileStoreOptions) {
    this.#root = root;
    this.#lockPath = lockPath;
    this.#fsync = options.fsync ?? false;
    this.#blobs = new BlobFiles(path.join(root, 'blobs'), this.#fsync);
    this.#sessionPruneEveryMs = options.sessionPruneEveryMs ?? 60_000;
    this.#logger = options.log;
    this.#events.setMaxListeners(0);
  }

  // ---- loading -------------------------------------------------------------------------------

  async load(): Promise<void> {
    for (const sub of ['docs', 'logs', 'schedules']) await mkdir(path.join(this.#root, sub), { recursive: true, mode: 0o700 });
    await this.#loadDocs();
    await this.#loadLogs();
    await this.#loadSchedules();
  }

  async #loadDocs(): Promise<void> {
    const docsDir = path.join(this.#root, 'docs');
    const entries = await readdir(docsDir, { withFileTypes: true });
    // The earlier layout first: a journal next to an old folder was written by a migration cut off before it
    // deleted the folder, so the journal is the newer of the two.
    const oldFolders: string[] = [];
    for (const entry of entries) {
      if (entry.isDirectory() && COLLECTION_NAME.test(entry.name)) {
        await this.#loadOldLayout(this.#collection(entry.name), path.join(docsDir, entry.name));
        oldFolders.push(entry.name);
      }
    }
    for (const entry of entries) {
      const full = path.join(docsDir, entry.name);
      if (entry.name.endsWith('.tmp')) {
        // A rewrite killed before its rename: the journal it was replacing is still complete.
        await removeQuietly(full);
        continue;
      }
      const name = entry.name.slice(0, -'.jsonl'.length);
      if (!entry.isFile() || !entry.name.endsWith('.jsonl') || !COLLECTION_NAME.test(name)) continue;
      const collection = this.#collection(name);
      collection.lines += await forEachJsonLine(full, (parsed) => {
        const line = parsed as JournalLine;
        if (typeof line.id !== 'string') throw new Error(`The journal ${full} has a line without an id; it was changed outside mailgate`);
        if (line.deleted === true) collection.docs.delete(line.id);
        else if (typeof line.version === 'number' && typeof line.blob === 'string') collection.docs.set(line.id, { version: line.version, json: null, blob: line.blob });
        else if (typeof line.version === 'number' && 'value' in line) collection.docs.set(line.id, { version: line.version, json: JSON.stringify(line.value) });
        else throw new Error(`The journal ${full} has a line for ${JSON.stringify(line.id).slice(0, 60)} that is neither a document nor a deletion`);
      });
    }
    for (const name of oldFolders) {
      const collection = this.#collection(name);
      await this.#compactCollection(collection);
      await rm(path.join(docsDir, name), { recursive: true, force: true });
      if (this.#fsync) await syncFolder(docsDir);
    }
    for (const collection of this.#collections.values()) {
      if (needsCompaction(collection.lines, collection.docs.size)) await this.#compactCollection(collection);
    }
    const live = new Set<string>();
    for (const collection of this.#collections.values()) for (const doc of collection.docs.values()) if (doc.blob) live.add(doc.blob);
    await this.#blobs.sweep(live);
  }

  /** Loads a collection folder of the earlier layout: one `<encoded id>.json` file per document. */
  async #loadOldLayout(collection: Collection, dir: string): Promise<void> {
    const files = await readdir(dir);
    const chunk = 64;
    for (let i = 0; i < files.length; i += chunk) {
      const loaded = await Promise.all(
        files.slice(i, i + chunk).map(async (file) => {
          // Temp files (dot-prefixed, `.tmp`) were never renamed into place, so they are not documents.
          if (file.startsWith('.') || !file.endsWith('.json')) return null;
          const full = path.join(dir, file);
          const text = await readFile(full, 'utf8');
          let parsed: { id?: unknown; version?: unknown; value?: unknown };
          try {
            parsed = JSON.parse(text) as typeof parsed;
          } catch (cause) {
            throw new Error(`The document file ${full} is not valid JSON (${text.length} bytes); it was changed outside mailgate or the disk lost data`, { cause });
          }
          if (typeof parsed.id !== 'string' || typeof parsed.version !== 'number' || !('value' in parsed)) {
            throw new Error(`The document file ${full} is not a mailgate document`);
          }
          return { id: parsed.id, version: parsed.version, json: JSON.stringify(parsed.value) };
        }),
      );
      for (const doc of loaded) if (doc) collection.docs.set(doc.id, { version: doc.version, json: doc.json });
    }
  }

  async #loadLogs(): Promise<void> {
    const logsDir = path.join(this.#root, 'logs');
    for (const file of await readdir(logsDir)) {
      if (!file.endsWith('.jsonl')) {
        if (file.endsWith('.tmp')) await removeQuietly(path.join(logsDir, file));
        continue;
      }
      const name = decodeURIComponent(file.slice(0, -'.jsonl'.length));
      const state = this.#log(name);
      for (const line of await readJsonLines(path.join(logsDir, file))) {
        const { id, entry } = line as { id: string; entry: unknown };
        state.entries.push({ id, json: JSON.stringify(entry) });
      }
      const last = state.entries.at(-1);
      if (last) {
        const [ms = '0', seq = '0'] = last.id.split('-');
        state.lastMs = Number(ms);
        state.seq = Number(seq);
      }
    }
  }

  async #loadSchedules(): Promise<void> {
    const dir = path.join(this.#root, 'schedules');
    for (const file of await readdir(dir)) {
      if (!file.endsWith('.jsonl')) {
        if (file.endsWith('.tmp')) await removeQuietly(path.join(dir, file));
        continue;
      }
      const state = this.#schedule(decodeURIComponent(file.slice(0, -'.jsonl'.length)));
      for (const op of (await readJsonLines(path.join(dir, file))) as [string, string, number?][]) {
        if (op[0] === 's' && typeof op[2] === 'number') this.#setDue(state, op[1], op[2]);
        else if (op[0] === 'u') this.#removeDue(state, op[1]);
      }
      await this.#compactSchedule(state);
    }
  }

  // ---- helpers -------------------------------------------------------------------------------

  #assertOpen(): void {
    if (this.#failure) throw this.#failure;
    if (this.#closed) throw new StoreUnavailableError('the file store is closed');
  }

  /**
   * Records the first failed write: memory is ahead of the disk and the file may end in a partial line, so
   * the store stops here rather than serve or append on top of that.
   */
  #fail(file: AppendFile, cause: unknown): StoreUnavailableError {
    if (!this.#failure) {
      const reason = (cause as NodeJS.ErrnoException).code ?? (cause as Error).message;
      this.#failure = new StoreUnavailableError(
        `Writing ${file.path} failed (${reason}); the file store accepts no more operations, since the file may end in a ` +
          'partial line and writes in memory may be missing from it. Fix the disk (space, permissions, I/O errors) and ' +
          'restart mailgate: the partial line is cut off at start, and writes that were not acknowledged are not kept.',
        { cause },
      );
      this.#logger?.warn({ err: cause, file: file.path }, 'a store write failed; the file store stopped');
    }
    return this.#failure;
  }

  /** `written`, with a failure turned into the store's StoreUnavailableError. */
  #guard(file: AppendFile, written: Promise<void>): Promise<void> {
    return written.catch((err: unknown) => {
      throw this.#fail(file, err);
    });
  }

  #collection(name: string): Collection {
    let collection = this.#collections.get(name);
    if (!collection) {
      const journal = new AppendFile(path.join(this.#root, 'docs', `${name}.jsonl`), this.#fsync);
      collection = { docs: new Map(), sortedIds: null, journal, lines: 0 };
      this.#collections.set(name, collection);
    }
    return collection;
  }

  #log(name: string): LogState {
    let state = this.#logs.get(name);
    if (!state) {
      const file = new AppendFile(path.join(this.#root, 'logs', `${encodeFileName(name)}.jsonl`), this.#fsync);
      state = { entries: [], lastMs: 0, seq: 0, file };
      this.#logs.set(name, state);
    }
    return state;
  }

  #schedule(name: string): ScheduleState {
    let state = this.#schedules.get(name);
    if (!state) {
      const file = new AppendFile(path.join(this.#root, 'schedules', `${encodeFileName(name)}.jsonl`), this.#fsync);
      state = { due: new Map(), order: [], lines: 0, file };
      this.#schedules.set(name, state);
    }
    return state;
  }

  /** Queues a journal line (after `after`); resolves once it is written. Rewrites the journal when it is mostly history. */
  #writeLine(collection: Collection, line: string, after?: Promise<void>): Promise<void> {
    collection.lines += 1;
    const written = this.#guard(collection.journal, collection.journal.append(line, after));
    // Not awaited by the writer: its line is in the rewritten journal anyway (a failure stops the store).
    if (needsCompaction(collection.lines, collection.docs.size)) this.#compactCollection(collection).catch(() => undefined);
    return written;
  }

  /** Rewrites the journal from memory, after the lines already queued; lines queued later follow it. */
  #compactCollection(collection: Collection): Promise<void> {
    collection.lines = collection.docs.size;
    return this.#guard(collection.journal, collection.journal.rewrite(() => journalLines(collection.docs)));
  }

  // ---- documents -----------------------------------------------------------------------------

  async get<T>(collection: string, id: string): Promise<Doc<T> | null> {
    checkCollection(collection);
    this.#assertOpen();
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

  /** A version's JSON, from memory or its blob file. */
  #json(stored: StoredDoc): Promise<string> | string {
    return stored.json ?? this.#blobs.read(stored.blob!);
  }

  /**
   * Writes a new version's line (for a large value: its blob file first, and a line naming it); once written, a
   * large value leaves memory and the blob of the version it replaced is deleted.
   */
  #writeVersion(col: Collection, collection: string, id: string, stored: StoredDoc, replaced: StoredDoc | undefined): Promise<void> {
    let written: Promise<void>;
    if (stored.json !== null && stored.json.length >= BLOB_MIN_CHARS) {
      stored.blob = BlobFiles.nameOf(collection, id, stored.version);
      written = this.#writeLine(col, blobLine(id, stored.version, stored.blob), this.#blobs.write(stored.blob, stored.json));
      void written.then(() => (stored.json = null), () => undefined);
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

  async put<T>(collection: string, id: string, value: T, options: WriteOptions = {}): Promise<Doc<T>> {
    checkCollection(collection);
    checkName('document id', id);
    this.#assertOpen();
    const json = JSON.stringify(value);
    if (json === undefined) throw new Error(`cannot store ${typeof value} in ${collection}/${id}: not JSON`);
    const moves = checkScheduleOption(options);
    const col = this.#collection(collection);
    const current = col.docs.get(id);
    const actual = current?.version ?? 0;
    if (options.ifVersion !== undefined && options.ifVersion !== actual) throw new VersionConflictError(collection, id, options.ifVersion, actual);
    this.#count(options);
    // Memory changes in this tick, so the next compare-and-set already sees this version.
    const version = actual + 1;
    const stored: StoredDoc = { version, json };
    col.docs.set(id, stored);
    if (!current) col.sortedIds = null;
    const written = this.#writeVersion(col, collection, id, stored, current);
    await Promise.all([written, ...moves.map((move) => this.#applySchedule(move, id, written))]);
    return { id, version, value: JSON.parse(json) as T };
  }

  async delete(collection: string, id: string, options: WriteOptions = {}): Promise<boolean> {
    checkCollection(collection);
    const moves = checkScheduleOption(options);
    this.#assertOpen();
    const col = this.#collections.get(collection);
    const current = col?.docs.get(id);
    const actual = current?.version ?? 0;
    if (options.ifVersion !== undefined && options.ifVersion !== actual) throw new VersionConflictError(collection, id, options.ifVersion, actual);
    if (!col || !current) {
      await Promise.all(moves.map((move) => this.#applySchedule(move, id)));
      return false;
    }
    this.#count(options);
    col.docs.delete(id);
    col.sortedIds = null;
    const written = this.#afterReplace(this.#writeLine(col, `{"id":${JSON.stringify(id)},"deleted":true}\n`), current);
    await Promise.all([written, ...moves.map((move) => this.#applySchedule(move, id, written))]);
    return true;
  }

  async list<T>(collection: string, options: { prefix?: string } = {}): Promise<Doc<T>[]> {
    checkCollection(collection);
    this.#assertOpen();
    const col = this.#collections.get(collection);
    if (!col) return [];
    col.sortedIds ??= [...col.docs.keys()].sort(compareIds);
    const prefix = options.prefix ?? '';
    const ids = col.sortedIds;
    const out: Doc<T>[] = [];
    for (let i = prefix ? lowerBound(ids, prefix, compareIds) : 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!id.startsWith(prefix)) break;
      const stored = col.docs.get(id);
      if (!stored) continue; // deleted while an earlier blob was read
      const doc = stored.json !== null ? { id, version: stored.version, value: JSON.parse(stored.json) as T } : await this.get<T>(collection, id);
      if (doc) out.push(doc);
    }
    return out;
  }

  async collections(): Promise<string[]> {
    this.#assertOpen();
    return [...this.#collections].filter(([, c]) => c.docs.size > 0).map(([name]) => name).sort(compareIds);
  }

  // ---- locks ---------------------------------------------------------------------------------

  async acquireLock(name: string, ttlMs: number): Promise<Lock | null> {
    checkName('lock name', name);
    if (!(ttlMs > 0) || !Number.isFinite(ttlMs)) throw new Error(`lock ${name}: ttlMs must be a positive number, got ${ttlMs}`);
    this.#assertOpen();
    const now = Date.now();
    const held = this.#locks.get(name);
    if (held && held.expiresAt > now) return null;
    // Expired locks are only overwritten on re-acquire; drop them now and then so unique names do not pile up.
    if (this.#locks.size > 1000) for (const [key, lock] of this.#locks) if (lock.expiresAt <= now) this.#locks.delete(key);
    const owner = randomBytes(16).toString('hex');
    this.#locks.set(name, { owner, expiresAt: now + ttlMs });
    const locks = this.#locks;
    const holds = (): boolean => {
      const current = locks.get(name);
      return current !== undefined && current.owner === owner && current.expiresAt > Date.now();
    };
    return {
      name,
      owner,
      release: async () => {
        if (!holds()) return false;
        locks.delete(name);
        return true;
      },
      extend: async (ms: number) => {
        if (!holds()) return false;
        locks.set(name, { owner, expiresAt: Date.now() + ms });
        return true;
      },
    };
  }

  // ---- logs ----------------------------------------------------------------------------------

  async append<T>(log: string, entry: T): Promise<string> {
    checkFileBackedName('log name', log);
    this.#assertOpen();
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
    this.#assertOpen();
    const entries = this.#logs.get(log)?.entries ?? [];
    const byId = (a: { id: string }, b: { id: string }): number => compareIds(a.id, b.id);
    // Exclusive bounds: [after+1, before-1].
    let end = options.before === undefined ? entries.length : lowerBound(entries, { id: options.before, json: '' }, byId);
    const start = options.after === undefined ? 0 : lowerBound(entries, { id: `${options.after}\u0000`, json: '' }, byId);
    const out: LogEntry<T>[] = [];
    while (end > start && out.length < options.limit) {
      const item = entries[--end]!;
      out.push({ id: item.id, entry: JSON.parse(item.json) as T });
    }
    return out;
  }

  // ---- counters ------------------------------------------------------------------------------

  /** Applies a write's counter changes, or refuses the write (before anything changed) when one passes its max. */
  #count(options: WriteOptions): void {
    const changes = checkCounterChanges(options);
    for (const { counter, delta, max } of changes) {
      const current = this.#counters.get(counter) ?? 0;
      if (max !== undefined && delta > 0 && current + delta > max) throw new CounterLimitError(counter, current, max);
    }
    for (const { counter, delta } of changes) this.#counters.set(counter, (this.#counters.get(counter) ?? 0) + delta);
  }

  async counters(names: string[]): Promise<number[]> {
    this.#assertOpen();
    return names.map((name) => this.#counters.get(name) ?? 0);
  }

  async setCounters(values: Record<string, number>): Promise<void> {
    this.#assertOpen();
    for (const [name, value] of Object.entries(values)) this.#counters.set(name, value);
  }

  // ---- schedules -----------------------------------------------------------------------------

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
    const written = this.#guard(state.file, state.file.append(ops.map((op) => `${JSON.stringify(op)}\n`).join(''), after));
    // The operation file only grows; rewrite it from memory once it is mostly history.
    if (state.lines > 1000 && state.lines > 4 * state.due.size) this.#compactSchedule(state).catch(() => undefined);
    return written;
  }

  /**
   * Rewrites the schedule file with the entries as they are now. Taken now, not when the rewrite runs: the
   * rewrite is written in pieces while `order` keeps changing, and every change made from here on is in a
   * line appended after it, whose document line (for a `schedule` write option) has reached the disk first.
   */
  #compactSchedule(state: ScheduleState): Promise<void> {
    state.lines = state.due.size;
    const entries = state.order.slice();
    return this.#guard(
      state.file,
      state.file.rewrite(function* () {
        for (const { dueAt, id } of entries) yield `${JSON.stringify(['s', id, dueAt])}\n`;
      }),
    );
  }

  /** One move of the `schedule` option of put and delete: memory changes in the same tick as the document's. */
  #applySchedule(option: ScheduleMove, id: string, after?: Promise<void>): Promise<void> {
    const state = this.#schedule(option.queue);
    if (option.dueAt === null) {
      if (!state.due.has(id)) return Promise.resolve();
      this.#removeDue(state, id);
      return this.#record(state, [['u', id]], after);
    }
    this.#setDue(state, id, option.dueAt);
    return this.#record(state, [['s', id, option.dueAt]], after);
  }

  async schedule(queue: string, id: string, dueAt: number): Promise<void> {
    checkFileBackedName('queue name', queue);
    checkName('scheduled id', id);
    if (!Number.isFinite(dueAt)) throw new Error(`schedule ${queue}/${id}: due time must be a finite number of ms, got ${dueAt}`);
    this.#assertOpen();
    const state = this.#schedule(queue);
    this.#setDue(state, id, dueAt);
    await this.#record(state, [['s', id, dueAt]]);
  }

  async unschedule(queue: string, id: string): Promise<void> {
    this.#assertOpen();
    const state = this.#schedules.get(queue);
    if (!state?.due.has(id)) return;
    this.#removeDue(state, id);
    await this.#record(state, [['u', id]]);
  }

  async claimDue(queue: string, now: number, leaseMs: number, limit: number): Promise<string[]> {
    this.#assertOpen();
    const state = this.#schedules.get(queue);
    if (!state || limit <= 0) return [];
    let count = 0;
    while (count < state.order.length && count < limit && state.order[count]!.dueAt <= now) count++;
    if (count === 0) return [];
    const claimed = state.order.splice(0, count).map((item) => item.id);
    for (const id of claimed) state.due.delete(id);
    const leaseEnd = now + leaseMs;
    for (const id of claimed) this.#setDue(state, id, leaseEnd);
    await this.#record(state, claimed.map((id) => ['s', id, leaseEnd]));
    return claimed;
  }

  async scheduled(queue: string, options: { limit: number; newestFirst?: boolean }): Promise<ScheduledEntry[]> {
    checkName('queue name', queue);
    this.#assertOpen();
    const order = this.#schedules.get(queue)?.order ?? [];
    const limit = Math.max(0, Math.min(Math.floor(options.limit) || 0, order.length));
    const slice = options.newestFirst ? order.slice(order.length - limit).reverse() : order.slice(0, limit);
    return slice.map(({ id, dueAt }) => ({ id, dueAt }));
  }

  async scheduleStats(queue: string): Promise<{ count: number; earliestDueAt: number | null }> {
    this.#assertOpen();
    const state = this.#schedules.get(queue);
    return { count: state?.due.size ?? 0, earliestDueAt: state?.order[0]?.dueAt ?? null };
  }

  // ---- pub/sub, sessions, rate limits --------------------------------------------------------

  async publish(channel: string, message: string): Promise<void> {
    this.#assertOpen();
    // Delivered asynchronously, as over Redis, so publishers never run subscribers' code inline.
    setImmediate(() => {
      for (const listener of this.#events.listeners(channel) as ((message: string) => void)[]) {
        try {
          listener(message);
        } catch (err) {
          this.#logger?.warn({ err, channel }, 'a pub/sub handler threw');
        }
      }
    });
  }

  async subscribe(channel: string, handler: (message: string) => void): Promise<() => Promise<void>> {
    this.#assertOpen();
    this.#events.on(channel, handler);
    return async () => {
      this.#events.off(channel, handler);
    };
  }

  createSessionStore(sessionModule: typeof session): session.Store {
    const store = createPruningSessionStore(sessionModule, this.#sessionPruneEveryMs);
    this.#sessionStores.push(store);
    return store;
  }

  createRateLimiter(options: RateLimiterOptions): RateLimiterAbstract {
    return new RateLimiterMemory({
      keyPrefix: options.keyPrefix,
      points: options.points,
      duration: options.durationSec,
      blockDuration: options.blockDurationSec ?? 0,
    });
  }

  async ping(): Promise<void> {
    this.#assertOpen();
    try {
      await stat(this.#lockPath);
    } catch (cause) {
      throw new StoreUnavailableError(`the data folder ${path.dirname(this.#root)} is not reachable`, { cause });
    }
  }

  async compact(): Promise<void> {
    this.#assertOpen();
    await this.#compactStale();
  }

  /** Rewrites every journal that holds a line no longer current. */
  async #compactStale(): Promise<void> {
    for (const collection of this.#collections.values()) {
      if (collection.lines > collection.docs.size) await this.#compactCollection(collection);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      // Superseded versions and deleted documents leave the disk with the process (see the top of this file).
      if (!this.#failure) await this.#compactStale();
    } catch (err) {
      this.#logger?.warn({ err }, 'rewriting a journal at close failed; it is complete and is read as it is at the next start');
    } finally {
      await Promise.all([...this.#collections.values()].map((c) => c.journal.close()));
      await Promise.all([...this.#logs.values()].map((s) => s.file.close()));
      await Promise.all([...this.#schedules.values()].map((s) => s.file.close()));
      for (const s of this.#sessionStores) s.stopPruning();
      this.#events.removeAllListeners();
      forgetDirLock(this.#root);
      await removeQuietly(this.#lockPath);
    }
  }
}
