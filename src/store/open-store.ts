import type { Config } from '../config.js';
import { createFileStore } from './file-store.js';
import { createRedisStore } from './redis-store.js';
import type { StoreWithSessions } from './sessions.js';

/** The subset of a pino logger the stores use. */
export interface StoreLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/**
 * The store the configuration asks for: Redis when REDIS_URL is set (shared by every instance; one Redis or a
 * Redis Cluster, MAILGATE_REDIS_MODE), else the
 * embedded file store in MAILGATE_DATA_DIR (one process). Throws StoreUnavailableError when Redis cannot
 * be reached or the data folder is in use by another process. MAILGATE_FSYNC applies to the embedded store only:
 * on Redis, durability is the server's AOF setting.
 */
export async function openStore(
  config: Pick<Config, 'REDIS_URL' | 'MAILGATE_REDIS_PREFIX' | 'MAILGATE_DATA_DIR' | 'MAILGATE_FSYNC'> &
    Partial<Pick<Config, 'MAILGATE_REDIS_MODE'>>,
  log?: StoreLog,
): Promise<StoreWithSessions> {
  if (config.REDIS_URL) {
    const store = await createRedisStore({
      url: config.REDIS_URL,
      prefix: config.MAILGATE_REDIS_PREFIX,
      mode: config.MAILGATE_REDIS_MODE ?? 'single',
      ...(log ? { log } : {}),
    });
    log?.info(
      { store: 'redis', mode: config.MAILGATE_REDIS_MODE ?? 'single', prefix: config.MAILGATE_REDIS_PREFIX },
      'store opened on Redis',
    );
    return store;
  }
  const store = await createFileStore(config.MAILGATE_DATA_DIR, {
    fsync: config.MAILGATE_FSYNC === 'always',
    ...(log ? { log } : {}),
  });
  log?.info(
    { store: 'file', dir: config.MAILGATE_DATA_DIR },
    'store opened in the data folder (embedded, single process)',
  );
  return store;
}
