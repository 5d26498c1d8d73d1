import { Cluster, type ClusterOptions, Redis, type RedisOptions } from 'ioredis';
import { safeUrl, withTimeout } from './redis-errors.js';
import { StoreUnavailableError } from './store.js';

/**
 * The ioredis connections of the Redis store: one Redis (`single`) or a Redis Cluster (`cluster`, the URL naming
 * any node; the client learns the others from it). Both fail alike: a command fails after one reconnection
 * attempt or after the command timeout, commands issued during a short reconnect wait in the offline queue, and
 * commands of one tick share a socket write (autopipelining, per node on a cluster).
 */

export type RedisMode = 'single' | 'cluster';

/** The client the store sends its commands with; both kinds have the same command methods. */
export type RedisClient = Redis | Cluster;
/** One Redis (not a cluster), e.g. the source of a copy to a cluster. */
export type SingleRedisClient = Redis;

export interface RedisConnectionOptions {
  url: string;
  mode: RedisMode;
  commandTimeoutMs: number;
  connectTimeoutMs: number;
}

const retryDelay = (times: number): number => Math.min(times * 200, 2000);

function singleOptions(o: RedisConnectionOptions): RedisOptions {
  return {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: true,
    connectTimeout: o.connectTimeoutMs,
    commandTimeout: o.commandTimeoutMs,
    retryStrategy: retryDelay,
    // Commands issued in the same tick go out in one socket write: under load every request and worker adds
    // a few commands, and a write per command was a visible share of the CPU profile.
    enableAutoPipelining: true,
  };
}

/** The node REDIS_URL names, and what every node connection takes from it (credentials, TLS). */
function clusterSeed(url: string): { node: { host: string; port: number }; redisOptions: RedisOptions } {
  const u = new URL(url);
  if (u.pathname && u.pathname !== '/' && u.pathname !== '/0')
    throw new Error('REDIS_URL: a Redis Cluster has only database 0 (drop the /db part of the URL)');
  const redisOptions: RedisOptions = {};
  if (u.username) redisOptions.username = decodeURIComponent(u.username);
  if (u.password) redisOptions.password = decodeURIComponent(u.password);
  if (u.protocol === 'rediss:') redisOptions.tls = {};
  return { node: { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 6379) }, redisOptions };
}

function clusterOptions(o: RedisConnectionOptions, seedOptions: RedisOptions): ClusterOptions {
  return {
    lazyConnect: true,
    // Reads go to masters: a replica may lag, and the store's reads decide compare-and-set writes.
    scaleReads: 'master',
    enableOfflineQueue: true,
    enableReadyCheck: true,
    enableAutoPipelining: true,
    clusterRetryStrategy: retryDelay,
    // A failover, a moving slot or a master down: retry up to maxRedirections times, 100 ms apart, so a command
    // fails in about two seconds when its master stays away, as one Redis fails after one reconnection attempt.
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    retryDelayOnTryAgain: 100,
    maxRedirections: 16,
    slotsRefreshTimeout: o.connectTimeoutMs,
    redisOptions: {
      ...seedOptions,
      maxRetriesPerRequest: 1,
      connectTimeout: o.connectTimeoutMs,
      commandTimeout: o.commandTimeoutMs,
    },
  };
}

/** The store's command connection, not yet connected. */
function createCommandClient(o: RedisConnectionOptions): RedisClient {
  if (o.mode === 'single') return new Redis(o.url, singleOptions(o));
  const seed = clusterSeed(o.url);
  return new Cluster([seed.node], clusterOptions(o, seed.redisOptions));
}

/** The command connection, connected and answering; StoreUnavailableError when Redis cannot be reached. */
export async function connectCommandClient(
  o: RedisConnectionOptions,
  log?: { warn(obj: object, msg: string): void },
): Promise<RedisClient> {
  const client = createCommandClient(o);
  // Without a listener ioredis prints every reconnect error to stderr; the log gets them instead.
  let lastLogged = 0;
  client.on('error', (err: Error) => {
    if (Date.now() - lastLogged > 10_000) {
      lastLogged = Date.now();
      log?.warn({ err }, 'Redis connection error');
    }
  });
  // A cluster client retries its seed node forever; one Redis gives up after connectTimeout by itself.
  const limitMs = o.connectTimeoutMs * 2;
  try {
    await withTimeout(
      (async () => {
        await client.connect();
        await client.ping();
      })(),
      limitMs,
      `no answer within ${limitMs} ms`,
    );
  } catch (cause) {
    client.disconnect();
    const message = `Cannot reach Redis at ${safeUrl(o.url)}: ${(cause as Error).message}`;
    throw new StoreUnavailableError(message, { cause });
  }
  return client;
}

/**
 * A connection for subscribe mode, not yet connected: it waits for messages indefinitely, so no command timeout,
 * and it retries forever in the background. On a cluster, PUBLISH reaches every node, so one subscriber
 * connection (ioredis picks the node and moves the subscriptions when it fails) hears every channel.
 */
export function createSubscriberClient(o: RedisConnectionOptions): RedisClient {
  if (o.mode === 'single') {
    const { commandTimeout: _timeout, ...options } = singleOptions(o);
    return new Redis(o.url, { ...options, maxRetriesPerRequest: null, enableAutoPipelining: false });
  }
  const seed = clusterSeed(o.url);
  const options = clusterOptions(o, seed.redisOptions);
  const { commandTimeout: _timeout, ...redisOptions } = options.redisOptions ?? {};
  return new Cluster([seed.node], {
    ...options,
    enableAutoPipelining: false,
    redisOptions: { ...redisOptions, maxRetriesPerRequest: null },
  });
}

/**
 * Where keys that change together live. On one Redis, under the prefix as always (no migration). On a cluster,
 * documents, collection indexes, counters and schedules are bound together by the scripts (a put moves a
 * document, its index, counters and schedules atomically; a claim reads documents by key), so they share the
 * hash tag `{<prefix>}` and with it one slot; sessions, rate limits, locks and logs are one key per operation and
 * keep plain keys, which the cluster spreads over all masters.
 */
export function dataPrefixOf(mode: RedisMode, prefix: string): string {
  return mode === 'cluster' ? `{${prefix}}` : prefix;
}

/** A connection to one Redis (never a cluster), connected and answering: the source of a copy to a cluster. */
export async function connectSingleClient(
  url: string,
  timeouts: { commandTimeoutMs: number; connectTimeoutMs: number },
) {
  return (await connectCommandClient({ url, mode: 'single', ...timeouts })) as SingleRedisClient;
}
