import { connectCommandClient, connectSingleClient, dataPrefixOf } from './redis-connection.js';
import { quitOrDisconnect, safeUrl } from './redis-errors.js';
import { StoreUnavailableError } from './store.js';

/**
 * Copies a deployment's keys from one Redis to a Redis Cluster, for the move of a fleet (README, "Moving a fleet
 * to a Redis Cluster"): every key under the prefix, value and remaining time to live alike (DUMP/RESTORE), with the
 * key families the cluster keeps under the hash tag (see dataPrefixOf) renamed into it. Run while no instance
 * writes to the source; running it again replaces what the first run copied. A batch job: it walks the key space
 * with SCAN, which the service itself never does.
 */

/** The families that change together in the scripts and therefore live under `{prefix}` on a cluster. */
const DATA_FAMILIES = ['d:', 'i:', 'sched:', 'collections', 'counters'];

/** A key's name on the cluster, for a key under `prefix` on one Redis. */
export function clusterKeyOf(prefix: string, key: string): string {
  const rest = key.slice(prefix.length);
  const data = DATA_FAMILIES.some((f) => (f.endsWith(':') ? rest.startsWith(f) : rest === f));
  return data ? `${dataPrefixOf('cluster', prefix)}${rest}` : key;
}

export interface CopyToClusterOptions {
  fromUrl: string;
  toUrl: string;
  prefix: string;
  /** Called every 1,000 keys and at the end. */
  onProgress?: (copied: number) => void;
}

export async function copyToCluster(o: CopyToClusterOptions): Promise<{ copied: number }> {
  const source = await connectSingleClient(o.fromUrl, { commandTimeoutMs: 30_000, connectTimeoutMs: 5000 }).catch(
    (cause: unknown) => {
      throw new StoreUnavailableError(`Cannot reach the source Redis at ${safeUrl(o.fromUrl)}`, { cause });
    },
  );
  const target = await connectCommandClient({
    url: o.toUrl,
    mode: 'cluster',
    commandTimeoutMs: 30_000,
    connectTimeoutMs: 5000,
  }).catch((err: unknown) => {
    source.disconnect();
    throw err;
  });
  let copied = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await source.scan(cursor, 'MATCH', `${o.prefix}*`, 'COUNT', 500);
      cursor = next;
      const dumps = await Promise.all(
        keys.map(async (key) => ({ key, dump: await source.dumpBuffer(key), ttl: await source.pttl(key) })),
      );
      await Promise.all(
        dumps.map(async ({ key, dump, ttl }) => {
          // Gone since SCAN saw it, or expiring this very moment: nothing to copy.
          if (dump === null || ttl === -2) return;
          await target.restore(clusterKeyOf(o.prefix, key), ttl > 0 ? ttl : 0, dump, 'REPLACE');
          copied++;
          if (copied % 1000 === 0) o.onProgress?.(copied);
        }),
      );
    } while (cursor !== '0');
    o.onProgress?.(copied);
    return { copied };
  } finally {
    await Promise.all([quitOrDisconnect(source), quitOrDisconnect(target)]);
  }
}
