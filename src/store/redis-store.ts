import { RedisStore as RedisSessionStore } from 'connect-redis';
import type session from 'express-session';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import { checkCollection, checkName, compareIds } from './names.js';
import { guard, mapError, quitOrDisconnect, withTimeout } from './redis-errors.js';
import {
  connectCommandClient,
  createSubscriberClient,
  dataPrefixOf,
  type RedisClient,
  type RedisConnectionOptions,
  type RedisMode,
} from './redis-connection.js';
import { RedisPubSub } from './redis-pubsub.js';
import { acquireRedisLock, type RedisLockOptions } from './redis-locks.js';
import { RedisLogs } from './redis-logs.js';
import { RedisSchedules } from './redis-schedules.js';
import { Script } from './redis-script.js';
import { RedisPutBatch } from './redis-put-batch.js';
import {
  CLAIM_DUE_DOCS_LUA,
  CLAIM_DUE_LUA,
  DELETE_LUA,
  EXTEND_LOCK_LUA,
  PUT_MANY_LUA,
  RELEASE_LOCK_LUA,
} from './redis-scripts.js';
import type { RateLimiterOptions, StoreWithSessions } from './sessions.js';
import {
  checkCounterChanges,
  type ClaimedDoc,
  CounterLimitError,
  VersionConflictError,
  type Doc,
  type ListOptions,
  type Lock,
  type LogEntry,
  scheduleMoves,
  type ScheduledEntry,
  type WriteOptions,
} from './store.js';

/**
 * The Redis store: any number of mailgate instances share one Redis or one Redis Cluster. The only module that
 * imports connect-redis; its clients come from redis-connection.ts, the only one that imports ioredis; pub/sub
 * (redis-pubsub.ts) gets its connection from here.
 *
 * Keys (all under `prefix`; on a cluster the first five under `{prefix}`, one hash slot, see dataPrefixOf):
 *   d:<collection>:<id>   hash {v: version, d: JSON}        documents
 *   i:<collection>        sorted set (score 0, lex order)    ids of a collection, for list/prefix
 *   collections           set                                collections holding documents
 *   sched:<queue>         sorted set id → due time (ms)      schedules
 *   counters              hash name → integer                counters of the `count` write option
 *   lock:<name>           string owner, PX ttl               locks
 *   log:<name>            stream, field `e` = JSON           append-only logs
 *   ch:<channel>          pub/sub channel
 *   sess:<sid>, rl:…      sessions (connect-redis), rate limits (rate-limiter-flexible)
 *
 * Every multi-key change runs in one Lua script, so compare-and-set, claims and index updates are
 * atomic across instances. Nothing ever walks the key space (no KEYS/SCAN) on a hot path.
 *
 * Failure behaviour (redis-connection.ts): a down or frozen Redis turns into StoreUnavailableError (HTTP 503)
 * in well under the time a load balancer's readiness probe waits, instead of requests piling up.
 */

export interface RedisStoreOptions {
  url: string;
  /** Prepended to every key and channel, e.g. `mailgate:`. */
  prefix: string;
  /** `cluster`: `url` names any node of a Redis Cluster. Default `single`. */
  mode?: RedisMode;
  /** Per-command timeout. Default 5000 ms. */
  commandTimeoutMs?: number;
  /** Connect timeout (also bounds start-up when Redis is down). Default 2000 ms. */
  connectTimeoutMs?: number;
  /** Receives errors thrown by pub/sub handlers and connection errors. */
  log?: { warn(obj: object, msg: string): void };
}

const PING_TIMEOUT_MS = 1500;

const PUT_MANY = new Script(PUT_MANY_LUA);
const DELETE = new Script(DELETE_LUA);
const RELEASE_LOCK = new Script(RELEASE_LOCK_LUA);
const EXTEND_LOCK = new Script(EXTEND_LOCK_LUA);
const CLAIM_DUE = new Script(CLAIM_DUE_LUA);
const CLAIM_DUE_DOCS = new Script(CLAIM_DUE_DOCS_LUA);

export async function createRedisStore(options: RedisStoreOptions): Promise<StoreWithSessions> {
  const connection: RedisConnectionOptions = {
    url: options.url,
    mode: options.mode ?? 'single',
    commandTimeoutMs: options.commandTimeoutMs ?? 5000,
    connectTimeoutMs: options.connectTimeoutMs ?? 2000,
  };
  const client = await connectCommandClient(connection, options.log);
  return new RedisBackedStore(client, connection, options);
}

class RedisBackedStore implements StoreWithSessions {
  readonly kind = 'redis' as const;
  readonly exclusive = false;
  readonly durableIndexes = true;
  readonly #client: RedisClient;
  readonly #mode: RedisMode;
  readonly #prefix: string;
  /** Documents, indexes, counters and schedules: one hash slot on a cluster. */
  readonly #dataPrefix: string;
  readonly #pubsub: RedisPubSub;
  readonly #puts: RedisPutBatch;
  readonly #schedules: RedisSchedules;
  readonly #locks: RedisLockOptions;
  readonly #logs: RedisLogs;

  constructor(client: RedisClient, connection: RedisConnectionOptions, options: RedisStoreOptions) {
    this.#client = client;
    this.#mode = connection.mode;
    this.#prefix = options.prefix;
    this.#dataPrefix = dataPrefixOf(connection.mode, options.prefix);
    this.#puts = new RedisPutBatch((keys, args) =>
      PUT_MANY.run(client, [this.#collectionsKey, this.#countersKey, ...keys], args),
    );
    this.#locks = {
      prefix: options.prefix,
      setIfAbsent: (key, owner, ttlMs) => client.set(key, owner, 'PX', ttlMs, 'NX'),
      release: (keys, args) => RELEASE_LOCK.run(client, keys, args),
      extend: (keys, args) => EXTEND_LOCK.run(client, keys, args),
    };
    this.#logs = new RedisLogs(options.prefix, client);
    this.#schedules = new RedisSchedules({
      prefix: this.#dataPrefix,
      commands: client,
      claimDue: (keys, args) => CLAIM_DUE.run(client, keys, args),
      claimDueDocs: (keys, args) => CLAIM_DUE_DOCS.run(client, keys, args),
    });
    this.#pubsub = new RedisPubSub({
      prefix: options.prefix,
      commandTimeoutMs: connection.commandTimeoutMs,
      log: options.log,
      publish: (channel, message) => client.publish(channel, message),
      openSubscriber: (onMessage) => {
        const subscriber = createSubscriberClient(connection);
        subscriber.on('error', () => undefined);
        subscriber.on('message', onMessage);
        return subscriber;
      },
    });
  }

  #docKey(collection: string, id: string): string {
    return `${this.#dataPrefix}d:${collection}:${id}`;
  }

  #indexKey(collection: string): string {
    return `${this.#dataPrefix}i:${collection}`;
  }

  get #collectionsKey(): string {
    return `${this.#dataPrefix}collections`;
  }

  get #countersKey(): string {
    return `${this.#dataPrefix}counters`;
  }

  // ---- documents -----------------------------------------------------------------------------

  async get<T>(collection: string, id: string): Promise<Doc<T> | null> {
    checkCollection(collection);
    const [v, d] = await guard(() => this.#client.hmget(this.#docKey(collection, id), 'v', 'd'));
    if (v == null || d == null) return null;
    return { id, version: Number(v), value: JSON.parse(d) as T };
  }

  async put<T>(collection: string, id: string, value: T, options: WriteOptions = {}): Promise<Doc<T>> {
    checkCollection(collection);
    checkName('document id', id);
    const json = JSON.stringify(value);
    if (json === undefined) throw new Error(`cannot store ${typeof value} in ${collection}/${id}: not JSON`);
    const expected = options.ifVersion === undefined ? '' : String(options.ifVersion);
    const counters = checkCounterChanges(options);
    const moves = this.#moves(options);
    const [ok, version, refused] = await guard(() =>
      this.#puts.put({
        docKey: this.#docKey(collection, id),
        indexKey: this.#indexKey(collection),
        id,
        collection,
        expected,
        json,
        counters,
        moves,
      }),
    );
    if (ok === 2) throw limitError(options, refused, version);
    if (ok !== 1) throw new VersionConflictError(collection, id, options.ifVersion ?? 0, version);
    return { id, version, value: JSON.parse(json) as T };
  }

  async delete(collection: string, id: string, options: WriteOptions = {}): Promise<boolean> {
    checkCollection(collection);
    const expected = options.ifVersion === undefined ? '' : String(options.ifVersion);
    const [keys, optionArgs] = this.#optionArgs(options);
    const [ok, version] = (await guard(() =>
      DELETE.run(
        this.#client,
        [this.#docKey(collection, id), this.#indexKey(collection), this.#collectionsKey, ...keys],
        [expected, id, collection, ...optionArgs],
      ),
    )) as [number, number];
    if (ok !== 1) throw new VersionConflictError(collection, id, options.ifVersion ?? 0, version);
    return version > 0;
  }

  /** KEYS[4..] and the arguments of DELETE for the `count` and `schedule` options (see APPLY_OPTIONS). */
  #optionArgs(options: WriteOptions): [string[], string[]] {
    const changes = checkCounterChanges(options);
    const moves = this.#moves(options);
    const modes: string[] = [
      String(changes.length),
      ...changes.flatMap((c) => [c.counter, String(c.delta), c.max === undefined ? '' : String(c.max)]),
    ];
    return [
      [this.#countersKey, ...moves.map(([key]) => key)],
      [...modes, ...moves.map(([, mode]) => mode)],
    ];
  }

  /** The `schedule` option, checked: each schedule's key and its mode, 'u' (remove) or the due time. */
  #moves(options: WriteOptions): [string, string][] {
    return scheduleMoves(options).map(({ queue, dueAt }) => {
      checkName('queue name', queue);
      if (dueAt !== null && !Number.isFinite(dueAt))
        throw new Error(`schedule ${queue}: due time must be a finite number of ms or null, got ${dueAt}`);
      return [this.#schedules.keyOf(queue), dueAt === null ? 'u' : String(dueAt)];
    });
  }

  async list<T>(collection: string, options: ListOptions = {}): Promise<Doc<T>[]> {
    checkCollection(collection);
    const prefix = options.prefix ?? '';
    const index = this.#indexKey(collection);
    const after = options.after !== undefined && options.after >= prefix ? options.after : null;
    // 0xFF never occurs in UTF-8, so "[prefix" .. "(prefix\xFF" is exactly the ids starting with prefix.
    const min = after !== null ? Buffer.from(`(${after}`) : prefix ? Buffer.from(`[${prefix}`) : '-';
    const prefixMax = prefix ? Buffer.concat([Buffer.from(`(${prefix}`), Buffer.from([0xff])]) : '+';
    const before = options.before;
    const max =
      before !== undefined && (!prefix || before.startsWith(prefix) || before < prefix)
        ? Buffer.from(`(${before}`)
        : prefixMax;
    const limit = options.limit !== undefined ? (['LIMIT', 0, options.limit] as const) : null;
    const ids = await guard(() =>
      options.descending
        ? limit
          ? this.#client.zrevrangebylex(index, max, min, ...limit)
          : this.#client.zrevrangebylex(index, max, min)
        : limit
          ? this.#client.zrangebylex(index, min, max, ...limit)
          : this.#client.zrangebylex(index, min, max),
    );
    const out: Doc<T>[] = [];
    const chunk = 500;
    for (let i = 0; i < ids.length; i += chunk) {
      const slice = ids.slice(i, i + chunk);
      const pipeline = this.#client.pipeline();
      for (const id of slice) pipeline.hmget(this.#docKey(collection, id), 'v', 'd');
      const results = await guard(() => pipeline.exec());
      slice.forEach((id, j) => {
        const [err, fields] = results?.[j] ?? [new Error('missing pipeline reply'), null];
        if (err) throw mapError(err);
        const [v, d] = fields as [string | null, string | null];
        // Deleted between reading the index and the document: skip it, as if listed a moment later.
        if (v != null && d != null) out.push({ id, version: Number(v), value: JSON.parse(d) as T });
      });
    }
    // Redis orders by bytes, JavaScript by UTF-16 units; sort so both stores agree exactly.
    return options.descending ? out.sort((a, b) => compareIds(b.id, a.id)) : out.sort((a, b) => compareIds(a.id, b.id));
  }

  async collections(): Promise<string[]> {
    const names = await guard(() => this.#client.smembers(this.#collectionsKey));
    return names.sort(compareIds);
  }

  // ---- locks, logs and schedules (redis-locks.ts, redis-logs.ts, redis-schedules.ts) ------------

  acquireLock(name: string, ttlMs: number): Promise<Lock | null> {
    return acquireRedisLock(this.#locks, name, ttlMs);
  }

  append<T>(log: string, entry: T): Promise<string> {
    return this.#logs.append(log, entry);
  }

  readLog<T>(log: string, options: { before?: string; after?: string; limit: number }): Promise<LogEntry<T>[]> {
    return this.#logs.readLog<T>(log, options);
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

  claimDueDocs<T>(
    queue: string,
    collection: string,
    now: number,
    leaseMs: number,
    limit: number,
  ): Promise<ClaimedDoc<T>[]> {
    checkCollection(collection);
    return this.#schedules.claimDueDocs<T>(queue, this.#docKey(collection, ''), now, leaseMs, limit);
  }

  scheduled(queue: string, options: { limit: number; newestFirst?: boolean }): Promise<ScheduledEntry[]> {
    return this.#schedules.scheduled(queue, options);
  }

  scheduleStats(queue: string): Promise<{ count: number; earliestDueAt: number | null }> {
    return this.#schedules.scheduleStats(queue);
  }

  async counters(names: string[]): Promise<number[]> {
    if (names.length === 0) return [];
    const values = await guard(() => this.#client.hmget(this.#countersKey, ...names));
    return values.map((v) => Number(v ?? 0));
  }

  async setCounters(values: Record<string, number>): Promise<void> {
    if (Object.keys(values).length === 0) return;
    await guard(() => this.#client.hset(this.#countersKey, values));
  }

  // ---- pub/sub -------------------------------------------------------------------------------

  publish(channel: string, message: string): Promise<void> {
    return this.#pubsub.publish(channel, message);
  }

  subscribe(channel: string, handler: (message: string) => void): Promise<() => Promise<void>> {
    return this.#pubsub.subscribe(channel, handler);
  }

  // ---- sessions, rate limits, health ---------------------------------------------------------

  createSessionStore(_sessionModule: typeof session): session.Store {
    return new RedisSessionStore({ client: this.#client, prefix: `${this.#prefix}sess:` });
  }

  createRateLimiter(options: RateLimiterOptions): RateLimiterAbstract {
    return new RateLimiterRedis({
      storeClient: this.#client,
      keyPrefix: `${this.#prefix}rl:${options.keyPrefix}`,
      points: options.points,
      duration: options.durationSec,
      blockDuration: options.blockDurationSec ?? 0,
    });
  }

  /** Redis keeps only the current value of a key: nothing superseded to remove. */
  async compact(): Promise<void> {}

  async ping(): Promise<void> {
    await withTimeout(
      // On a cluster PING reaches a random node; the data's slot is what every request needs, so ask its master.
      guard(
        async () =>
          void (await (this.#mode === 'cluster' ? this.#client.exists(this.#collectionsKey) : this.#client.ping())),
      ),
      PING_TIMEOUT_MS,
      `Redis did not answer PING within ${PING_TIMEOUT_MS} ms`,
    );
  }

  async close(): Promise<void> {
    await Promise.all([quitOrDisconnect(this.#client), this.#pubsub.close()]);
  }
}

/** The refusal of a put: the `index`th counter change would pass its max. */
function limitError(options: WriteOptions, index: number, current: number): CounterLimitError {
  const change = checkCounterChanges(options)[index]!;
  return new CounterLimitError(change.counter, current, change.max!);
}
