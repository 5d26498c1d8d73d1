import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type session from 'express-session';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import { removeQuietly } from './append-file.js';
import { forgetDirLock, takeDirLock } from './dir-lock.js';
import { FileDocuments } from './file-documents.js';
import { FileLogs } from './file-logs.js';
import { FileStoreState } from './file-open-state.js';
import { FileSchedules } from './file-schedules.js';
import { MemoryCounters } from './memory-counters.js';
import { MemoryLocks } from './memory-locks.js';
import { MemoryPubSub } from './memory-pubsub.js';
import { memorySessionsAndLimits, type RateLimiterOptions, type StoreWithSessions } from './sessions.js';
import {
  StoreUnavailableError,
  type ClaimedDoc,
  type Doc,
  type ListOptions,
  type Lock,
  type LogEntry,
  type ScheduledEntry,
  type WriteOptions,
} from './store.js';

export { encodeFileName } from './file-names.js';

/**
 * The embedded store: plain files under `<dir>/store/`, one process at a time. This module opens and closes it;
 * each capability is a part of its own (file-documents.ts, file-schedules.ts, file-logs.ts, memory-locks.ts,
 * memory-counters.ts, memory-pubsub.ts, and sessions.ts for sessions and rate limits).
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
 * status at start, as the store's traits tell it to (`durableIndexes: false`; counters are rebuilt likewise).
 * For the same reason schedule files are not fsynced per batch, only when rewritten: a power loss can take their
 * last lines, never a document's, and a message costs two fsyncs (accepted, outcome) instead of six; and the
 * write is acknowledged once the document's line is, not after its schedule lines (one write less of latency
 * for every message accepted and every outcome).
 *
 * A journal is rewritten from memory when it has more than 1000 lines and over twice as many lines as live
 * documents (also at open), and at close when it holds any line that is no longer current, so superseded
 * versions and deleted documents stay in the journal only until the next clean stop or compact() (which an
 * encryption key rotation calls, so old ciphertexts do not stay on disk). Lines queued while a rewrite waits are
 * also appended after it; replaying a line twice changes nothing. Leftover temp files (`*.tmp`) are deleted at
 * open and never read.
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

export async function createFileStore(dir: string, options: FileStoreOptions = {}): Promise<StoreWithSessions> {
  const storeDir = path.join(path.resolve(dir), 'store');
  await mkdir(storeDir, { recursive: true, mode: 0o700 });
  const lockPath = await takeDirLock(storeDir);
  try {
    for (const sub of ['docs', 'logs', 'schedules'])
      await mkdir(path.join(storeDir, sub), { recursive: true, mode: 0o700 });
    const store = new FileStore(storeDir, lockPath, options);
    await store.load();
    return store;
  } catch (err) {
    forgetDirLock(storeDir);
    await removeQuietly(lockPath);
    throw err;
  }
}

class FileStore implements StoreWithSessions {
  readonly kind = 'file' as const;
  readonly exclusive = true;
  readonly durableIndexes = false;
  readonly #root: string;
  readonly #lockPath: string;
  readonly #logger: FileStoreOptions['log'];
  readonly #state: FileStoreState;
  readonly #documents: FileDocuments;
  readonly #schedules: FileSchedules;
  readonly #counters: MemoryCounters;
  readonly #logs: FileLogs;
  readonly #locks: MemoryLocks;
  readonly #pubsub: MemoryPubSub;
  readonly #sessions: ReturnType<typeof memorySessionsAndLimits>;

  constructor(root: string, lockPath: string, options: FileStoreOptions) {
    const fsync = options.fsync ?? false;
    const assertOpen = () => this.#state.assertOpen();
    this.#root = root;
    this.#lockPath = lockPath;
    this.#logger = options.log;
    this.#state = new FileStoreState(options.log);
    this.#schedules = new FileSchedules(path.join(root, 'schedules'), fsync, this.#state);
    this.#counters = new MemoryCounters(assertOpen);
    this.#documents = new FileDocuments(root, fsync, {
      state: this.#state,
      schedules: this.#schedules,
      counters: this.#counters,
    });
    this.#logs = new FileLogs(path.join(root, 'logs'), fsync, this.#state);
    this.#locks = new MemoryLocks(assertOpen);
    this.#pubsub = new MemoryPubSub(assertOpen, options.log);
    this.#sessions = memorySessionsAndLimits({
      ...(options.sessionPruneEveryMs !== undefined ? { sessionPruneEveryMs: options.sessionPruneEveryMs } : {}),
    });
  }

  async load(): Promise<void> {
    await this.#documents.load();
    await this.#logs.load();
    await this.#schedules.load();
  }

  get<T>(collection: string, id: string): Promise<Doc<T> | null> {
    return this.#documents.get(collection, id);
  }

  put<T>(collection: string, id: string, value: T, options?: WriteOptions): Promise<Doc<T>> {
    return this.#documents.put(collection, id, value, options);
  }

  delete(collection: string, id: string, options?: WriteOptions): Promise<boolean> {
    return this.#documents.delete(collection, id, options);
  }

  list<T>(collection: string, options?: ListOptions): Promise<Doc<T>[]> {
    return this.#documents.list(collection, options);
  }

  collections(): Promise<string[]> {
    return this.#documents.collections();
  }

  counters(names: string[]): Promise<number[]> {
    return this.#counters.counters(names);
  }

  setCounters(values: Record<string, number>): Promise<void> {
    return this.#counters.setCounters(values);
  }

  acquireLock(name: string, ttlMs: number): Promise<Lock | null> {
    return this.#locks.acquireLock(name, ttlMs);
  }

  append<T>(log: string, entry: T): Promise<string> {
    return this.#logs.append(log, entry);
  }

  readLog<T>(log: string, options: { before?: string; after?: string; limit: number }): Promise<LogEntry<T>[]> {
    return this.#logs.readLog(log, options);
  }

  schedule(queue: string, id: string, dueAt: number, options?: { onlyIfAbsent?: boolean }): Promise<void> {
    return this.#schedules.schedule(queue, id, dueAt, options);
  }

  unschedule(queue: string, id: string): Promise<void> {
    return this.#schedules.unschedule(queue, id);
  }

  claimDue(queue: string, now: number, leaseMs: number, limit: number): Promise<string[]> {
    return this.#schedules.claimDue(queue, now, leaseMs, limit);
  }

  async claimDueDocs<T>(
    queue: string,
    collection: string,
    now: number,
    leaseMs: number,
    limit: number,
  ): Promise<ClaimedDoc<T>[]> {
    const ids = await this.#schedules.claimDue(queue, now, leaseMs, limit);
    return Promise.all(ids.map(async (id) => ({ id, doc: await this.#documents.get<T>(collection, id) })));
  }

  scheduled(queue: string, options: { limit: number; newestFirst?: boolean }): Promise<ScheduledEntry[]> {
    return this.#schedules.scheduled(queue, options);
  }

  scheduleStats(queue: string): Promise<{ count: number; earliestDueAt: number | null }> {
    return this.#schedules.scheduleStats(queue);
  }

  publish(channel: string, message: string): Promise<void> {
    return this.#pubsub.publish(channel, message);
  }

  subscribe(channel: string, handler: (message: string) => void): Promise<() => Promise<void>> {
    return this.#pubsub.subscribe(channel, handler);
  }

  createSessionStore(sessionModule: typeof session): session.Store {
    return this.#sessions.createSessionStore(sessionModule);
  }

  createRateLimiter(options: RateLimiterOptions): RateLimiterAbstract {
    return this.#sessions.createRateLimiter(options);
  }

  async ping(): Promise<void> {
    this.#state.assertOpen();
    try {
      await stat(this.#lockPath);
    } catch (cause) {
      throw new StoreUnavailableError(`the data folder ${path.dirname(this.#root)} is not reachable`, { cause });
    }
  }

  async compact(): Promise<void> {
    this.#state.assertOpen();
    await this.#documents.compactStale();
  }

  async close(): Promise<void> {
    if (!this.#state.close()) return;
    try {
      // Superseded versions and deleted documents leave the disk with the process (see the top of this file).
      if (!this.#state.failed) await this.#documents.compactStale();
    } catch (err) {
      this.#logger?.warn(
        { err },
        'rewriting a journal at close failed; it is complete and is read as it is at the next start',
      );
    } finally {
      await this.#documents.close();
      await this.#logs.close();
      await this.#schedules.close();
      this.#sessions.close();
      this.#pubsub.close();
      forgetDirLock(this.#root);
      await removeQuietly(this.#lockPath);
    }
  }
}
