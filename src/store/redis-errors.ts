import { StoreUnavailableError, VersionConflictError } from './store.js';

/** How the Redis store turns failures into the store's errors, without leaking the URL's password. */

/** The URL without its password, for messages. */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'the configured REDIS_URL';
  }
}

/**
 * Replies that say Redis cannot serve the command right now, not that the command is wrong: a cluster missing a
 * master (CLUSTERDOWN), a slot being moved (TRYAGAIN), a node reloading its AOF (LOADING), a replica promoted or
 * demoted under us (READONLY, MASTERDOWN). Callers treat them as an outage and retry, as for a lost connection.
 */
const UNAVAILABLE_REPLY = /^(CLUSTERDOWN|TRYAGAIN|LOADING|READONLY|MASTERDOWN)\b/;

/** Connection-level failures become StoreUnavailableError; Redis replies (script or type errors) stay as they are. */
export function mapError(err: unknown): unknown {
  if (err instanceof VersionConflictError || err instanceof StoreUnavailableError) return err;
  if (err instanceof Error && err.name === 'ReplyError' && UNAVAILABLE_REPLY.test(err.message))
    return new StoreUnavailableError(`Redis cannot serve the command now: ${err.message}`, { cause: err });
  if (err instanceof Error && err.name === 'ReplyError') return err;
  if (err instanceof Error) return new StoreUnavailableError(`Redis is not reachable: ${err.message}`, { cause: err });
  return err;
}

/** `op()`, with its failure mapped by mapError. */
export async function guard<T>(op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    throw mapError(err);
  }
}

/** Rejects with StoreUnavailableError when `promise` takes longer than `ms` (its late outcome is ignored). */
export async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  promise.catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StoreUnavailableError(message)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Closes a connection politely (QUIT), or cuts it when Redis does not answer within a second. */
export async function quitOrDisconnect(client: {
  readonly status: string;
  quit(): Promise<unknown>;
  disconnect(): void;
}): Promise<void> {
  if (client.status === 'end') return;
  const timer = new Promise<'timeout'>((resolve) => setTimeout(resolve, 1000, 'timeout').unref());
  const result = await Promise.race([client.quit().catch(() => 'failed' as const), timer]);
  if (result !== 'OK') client.disconnect();
}
