/**
 * The storage of mailgate, as small capabilities: documents (with counters), schedules, locks, logs, pub/sub,
 * and the store's traits and lifecycle. A module asks only for the capabilities it uses; `Store` is all of
 * them, for wiring. Two implementations pass the same contract tests per capability
 * (test/integration/store-contract.test.ts): the embedded file store (single process, no setup) and the Redis
 * store (any number of instances). Sessions and rate limits are kept by the same backends (sessions.ts).
 *
 * Values are plain JSON. A store never sees a secret in plaintext: services seal secret fields with
 * the keyring (src/crypto/keyring.ts) before they put a document.
 */

/** A stored document with its version; versions start at 1 and grow by one on every write. */
export interface Doc<T> {
  id: string;
  value: T;
  version: number;
}

export interface WriteOptions {
  /**
   * Compare-and-set: `0` means "must not exist yet", `n` means "must be at version n".
   * Omitted means an unconditional write. A mismatch throws VersionConflictError and writes nothing.
   */
  ifVersion?: number;
  /**
   * Moves `id` in one or more queues' schedules in the same step as the write, and only if the write happens:
   * a time schedules (or moves) it, `null` removes it. A message and its place in its queues then never
   * disagree, even after a crash, and the whole change costs one round trip.
   */
  schedule?: ScheduleMove | ScheduleMove[];
  /**
   * Counter changes made in the same atomic step as the write, and only if it happens. A change with `max` that
   * would take its counter above `max` refuses the whole write with CounterLimitError: a limit is reserved
   * together with what it limits, so parallel writers can never overshoot it.
   */
  count?: CounterChange[];
}

/** One counter change of a write; `max` applies to increments only. */
export interface CounterChange {
  counter: string;
  delta: number;
  max?: number;
}

/** A write refused because a counter would pass its `max`; nothing was written. */
export class CounterLimitError extends Error {
  constructor(
    readonly counter: string,
    readonly current: number,
    readonly max: number,
  ) {
    super(`counter ${counter} is at ${current}; the write would pass its limit of ${max}`);
    this.name = 'CounterLimitError';
  }
}

/** One schedule change carried by a write: `dueAt` schedules or moves the id, `null` removes it. */
export interface ScheduleMove {
  queue: string;
  dueAt: number | null;
}

/** The schedule moves of a write, as a list (none, one or several). */
export function scheduleMoves(options: WriteOptions): ScheduleMove[] {
  const moves = options.schedule;
  return moves === undefined ? [] : Array.isArray(moves) ? moves : [moves];
}

/** The counter changes of a write, checked: names are non-empty, deltas and limits whole numbers. */
export function checkCounterChanges(options: WriteOptions): CounterChange[] {
  const changes = options.count ?? [];
  for (const { counter, delta, max } of changes) {
    if (counter.length === 0 || counter.includes('\0')) throw new Error(`invalid counter name "${counter}"`);
    if (!Number.isSafeInteger(delta) || (max !== undefined && !Number.isSafeInteger(max)))
      throw new Error(`counter ${counter}: delta and max must be whole numbers`);
  }
  return changes;
}

/** An entry of a schedule: an id and its due time. */
export interface ScheduledEntry {
  id: string;
  dueAt: number;
}

export class VersionConflictError extends Error {
  constructor(
    readonly collection: string,
    readonly id: string,
    readonly expected: number,
    readonly actual: number,
  ) {
    super(`version conflict on ${collection}/${id}: expected ${expected}, found ${actual}`);
    this.name = 'VersionConflictError';
  }
}

export class StoreUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailableError';
  }
}

/** A held lock. Only its owner can release or extend it (compare-and-delete on the random owner). */
export interface Lock {
  readonly name: string;
  readonly owner: string;
  /** Deletes the lock only if this owner still holds it; false when it had expired or was taken over. */
  release(): Promise<boolean>;
  /** Pushes the expiry to now + ttlMs only if this owner still holds it. */
  extend(ttlMs: number): Promise<boolean>;
}

export interface LogEntry<T> {
  /** Monotonic, sortable id (`<ms>-<seq>`); newer entries compare greater. */
  id: string;
  entry: T;
}

/**
 * Which documents `list` returns: ids starting with `prefix`, above `after` and below `before` (both exclusive), at
 * most `limit`, in ascending id order or, with `descending`, the highest ids first (for ids that start with their
 * creation time, the newest page of a collection costs the page).
 */
export interface ListOptions {
  prefix?: string;
  after?: string;
  before?: string;
  limit?: number;
  descending?: boolean;
}

/** Documents: collection names are [a-z0-9_-]+; ids are any non-empty string without NUL. */
export interface Documents {
  get<T>(collection: string, id: string): Promise<Doc<T> | null>;
  put<T>(collection: string, id: string, value: T, options?: WriteOptions): Promise<Doc<T>>;
  /** Returns false when there was nothing to delete; throws VersionConflictError on a CAS mismatch. */
  delete(collection: string, id: string, options?: WriteOptions): Promise<boolean>;
  /**
   * The documents of a collection (optionally only ids starting with `prefix`), sorted by id (highest first with
   * `descending`); with `after` only ids above it, with `before` only ids below it, with `limit` at most that many:
   * a page of a list costs the page, not the collection.
   */
  list<T>(collection: string, options?: ListOptions): Promise<Doc<T>[]>;
  /** The collection names that hold at least one document (used by key rotation to walk everything). */
  collections(): Promise<string[]>;
}

/** Counters changed by the `count` option of a document write, read and reset here. */
export interface Counters {
  /** Current values (0 for one never changed). */
  counters(names: string[]): Promise<number[]>;
  /** Sets counters outright (rebuilding them from the documents they count). */
  setCounters(values: Record<string, number>): Promise<void>;
}

/** A due-time index per queue: ids scheduled at a time, claimed atomically by one worker. */
export interface Schedules {
  /**
   * Adds or moves `id` to `dueAt` (ms since epoch). With `onlyIfAbsent`, an id already in the schedule keeps its
   * time: putting back an id that a worker may have claimed meanwhile must not overwrite that claim's lease.
   */
  schedule(queue: string, id: string, dueAt: number, options?: { onlyIfAbsent?: boolean }): Promise<void>;
  unschedule(queue: string, id: string): Promise<void>;
  /**
   * Atomically takes up to `limit` ids due at `now` or earlier and moves each to `now + leaseMs`, so no
   * other worker gets them; if the claimer dies, they become due again when the lease ends.
   */
  claimDue(queue: string, now: number, leaseMs: number, limit: number): Promise<string[]>;
  /**
   * Up to `limit` entries of a schedule in due-time order (ties by id), earliest first or, with `newestFirst`,
   * latest first. Lets a schedule serve as an index of ids by time without reading every document.
   */
  scheduled(queue: string, options: { limit: number; newestFirst?: boolean }): Promise<ScheduledEntry[]>;
  /** Number of scheduled ids and the earliest due time (null when empty). */
  scheduleStats(queue: string): Promise<{ count: number; earliestDueAt: number | null }>;
}

/** A claimed id with its document, read in the same step (null when there is none: a stale schedule entry). */
export interface ClaimedDoc<T> {
  id: string;
  doc: Doc<T> | null;
}

/**
 * Claiming due ids together with the documents they name: what a worker does for every batch, in one round trip
 * on Redis instead of one for the claim and one per document.
 */
export interface Claims {
  /** claimDue on `queue`, then each id's document in `collection`, as they are right after the claim. */
  claimDueDocs<T>(
    queue: string,
    collection: string,
    now: number,
    leaseMs: number,
    limit: number,
  ): Promise<ClaimedDoc<T>[]>;
}

export interface Locks {
  /** Takes the lock when free (SET NX PX semantics); null when another owner holds it. */
  acquireLock(name: string, ttlMs: number): Promise<Lock | null>;
}

/** Append-only logs (the audit log): entries are never changed or deleted by mailgate. */
export interface Logs {
  append<T>(log: string, entry: T): Promise<string>;
  /** Newest first. `before` pages backwards (exclusive); `after` reads newer entries (exclusive). */
  readLog<T>(log: string, options: { before?: string; after?: string; limit: number }): Promise<LogEntry<T>[]>;
}

/** Broadcast to every instance sharing this store (cache invalidation). In-process for the file store. */
export interface PubSub {
  publish(channel: string, message: string): Promise<void>;
  /** Returns an unsubscribe function. */
  subscribe(channel: string, handler: (message: string) => void): Promise<() => Promise<void>>;
}

/**
 * What a backend guarantees beyond its operations. Modules decide by these, never by which backend it is: a
 * third backend then states its guarantees instead of being mistaken for one of the two.
 */
export interface StoreTraits {
  /** Which backend, for people (logs, /readyz, the CLI's output). */
  readonly kind: 'file' | 'redis';
  /**
   * No other process can use the store while this one has it open, the CLI included (the embedded store locks
   * its folder). Start-up may then rebuild what it derives from the documents without racing anyone.
   */
  readonly exclusive: boolean;
  /**
   * A write's counter changes and schedule moves are kept with it through a crash and a restart (Redis: one
   * script per write). When false (the embedded store keeps counters in memory and writes schedule lines after
   * the document's), the modules that own them rebuild them from the documents at start; such a store is
   * exclusive, so the rebuild races nobody.
   */
  readonly durableIndexes: boolean;
}

export interface StoreLifecycle extends StoreTraits {
  /**
   * Removes superseded versions and deleted documents from disk now. The file store's journals keep them until
   * their next rewrite; after re-sealing every secret with a new key, the old ciphertexts must not linger.
   * Nothing to do on Redis, which keeps only the current version.
   */
  compact(): Promise<void>;
  /** Throws StoreUnavailableError when the store cannot be reached. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Every capability: what the composition root opens and hands out piece by piece. */
export type Store = Documents & Counters & Schedules & Claims & Locks & Logs & PubSub & StoreLifecycle;
