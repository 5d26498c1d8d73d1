import type { Logger } from '../../log.js';
import { StoreUnavailableError, type Schedules } from '../../store/store.js';
import type { LeaseKeeper } from './lease.js';
import { createPendingWrites } from './pending-writes.js';

/** How a worker records what its deliveries came to, through store outages. */
export interface OutcomeWriter {
  /**
   * Writes what a delivery came to, ending the lease's extension first (no heartbeat lands after the write).
   * While the store is unreachable the write is kept and retried, and the lease is extended meanwhile, so a
   * message an SMTP server accepted is not claimed and sent again by another worker when the store comes back.
   */
  write<T>(id: string, write: () => Promise<T>): Promise<T>;
  /**
   * A delivery that failed outside its outcome writes: every such failure happens before the message reaches
   * an SMTP server. When the store was unreachable the message goes back in the queue as soon as it answers.
   */
  failed(id: string, err: unknown): Promise<void>;
  /** Keeps trying pending writes for a short while, then gives them up (their messages wait for their lease). */
  stop(): Promise<void>;
}

export function createOutcomeWriter(deps: {
  store: Schedules;
  queue: string;
  lease: LeaseKeeper;
  log: Logger;
  now?: () => number;
}): OutcomeWriter {
  const { store, queue, lease, log } = deps;
  const now = deps.now ?? Date.now;
  const pending = createPendingWrites({ log });

  function write<T>(id: string, attempt: () => Promise<T>): Promise<T> {
    return pending.persist(id, async () => {
      await lease.end(id);
      try {
        return await attempt();
      } catch (err) {
        if (err instanceof StoreUnavailableError) lease.hold(id);
        throw err;
      }
    });
  }

  return {
    write,
    async failed(id, err) {
      if (!(err instanceof StoreUnavailableError)) {
        log.error(
          { err, messageId: id },
          'delivering a message failed unexpectedly; its lease will expire and it will be retried',
        );
        return;
      }
      await write(id, () => store.schedule(queue, id, now())).catch((e: unknown) =>
        log.warn({ err: e, messageId: id }, 'a message cut off by a store outage waits for its lease'),
      );
    },
    stop: () => pending.stop(),
  };
}
