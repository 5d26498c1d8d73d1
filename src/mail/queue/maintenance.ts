import type { Clock } from '../../clock.js';
import type { Logger } from '../../log.js';
import { VersionConflictError, type Doc, type Store } from '../../store/store.js';
import { buildCountersOnRedis, PlaceTally, readPlaceCounters, saveFileStoreCount } from '../queue-limits.js';
import { HourTally } from './hourly.js';
import {
  ALL,
  HELD_INDEX,
  indexOf,
  indexScore,
  INDEXES_MARKER,
  MAIL_META,
  MAIL_QUEUE,
  MESSAGES,
  SENT_INDEX,
  STATUS_INDEXES,
  type MessageDoc,
} from './model.js';
import type { Parking } from './parking.js';

/** Sent messages deleted per claim of the retention sweep. */
const CLEANUP_BATCH = 100;
const SWEEP_EVERY_MS = 3_600_000;
/** Parked messages whose server's mark went stale are looked for this often. */
const PARKED_SWEEP_EVERY_MS = 5_000;

/** Keeping the queue's data in shape: indexes and counters at start, and the retention sweep of sent messages. */
export interface QueueMaintenance {
  /** Brings the status indexes and counters in line with the messages, before the workers start. */
  prepare(): Promise<void>;
  /** Deletes sent messages older than the retention. */
  cleanup(): Promise<number>;
  /** Puts parked messages of servers whose mark is stale (their parking instance stopped) back in the queue. */
  sweepParked(): Promise<number>;
  /** Sweeps sent messages now and then hourly, and parked ones every few seconds, until stop(). */
  start(): void;
  stop(): void;
}

export function createQueueMaintenance(deps: {
  store: Store;
  log: Logger;
  clock: Clock;
  keepSentMs: number;
  parking: Parking;
  perServerInFlight: number;
  wake: () => void;
}): QueueMaintenance {
  const { store, log, clock, keepSentMs, parking } = deps;
  let sweepTimer: NodeJS.Timeout | null = null;
  let parkedTimer: NodeJS.Timeout | null = null;
  let parkedSweep: Promise<unknown> | null = null;

  async function sweepParked(): Promise<number> {
    // Up to a cap's worth per server and tick; this instance then keeps unparking one per finished delivery.
    const n = await parking.sweep(deps.perServerInFlight);
    if (n) deps.wake();
    return n;
  }

  /**
   * The embedded store writes a message and its schedule entries to separate files; a kill -9 in between leaves
   * a message out of the index of its status (or still in the one it left). At start, with the data folder
   * locked to this process (so no other worker holds a lease), every message is put in the index of its status
   * and taken out of the others, and entries of deleted messages are dropped: waiting messages at their due time,
   * the others at their index time. This also builds the indexes for messages written before they existed.
   */
  async function reindexOnFileStore(): Promise<void> {
    // Whatever was parked goes back to the global schedule below, as every waiting message does.
    await parking.clear();
    const now = clock.now();
    const entries = new Map<string, Map<string, number>>();
    for (const queue of STATUS_INDEXES)
      entries.set(queue, new Map((await store.scheduled(queue, { limit: ALL })).map((e) => [e.id, e.dueAt])));
    let waiting = 0;
    let changed = 0;
    const live = new Set<string>();
    const places = new PlaceTally();
    const hourly = new HourTally();
    const counted = await readPlaceCounters(store);
    for (const doc of await store.list<MessageDoc>(MESSAGES)) {
      const m = doc.value;
      live.add(doc.id);
      places.add(m);
      hourly.add(m);
      const target = indexOf(m.status);
      const score = target === MAIL_QUEUE ? Math.max(now, m.nextAttemptAt ?? now) : indexScore(m, keepSentMs);
      if (target === MAIL_QUEUE) waiting++;
      if (entries.get(target)!.get(doc.id) !== score) {
        await store.schedule(target, doc.id, score);
        changed++;
      }
      for (const queue of STATUS_INDEXES) {
        if (queue === target || !entries.get(queue)!.has(doc.id)) continue;
        await store.unschedule(queue, doc.id);
        changed++;
      }
    }
    for (const [queue, ids] of entries) {
      for (const id of ids.keys()) {
        if (live.has(id)) continue;
        await store.unschedule(queue, id);
        changed++;
      }
    }
    // The file store keeps counters in memory only: they are counted here, with the data folder locked to us.
    await saveFileStoreCount(store, places, counted);
    await hourly.save(store);
    if (changed) log.info({ waiting, changed }, 'mail indexes brought in line with the messages at start');
  }

  /**
   * On Redis every write moves a message between the indexes atomically; only messages written by versions
   * before the held, failed and sent indexes existed are missing from them. They are added once (one instance,
   * under a lock; a marker document records that it is done). Each is re-put with compare-and-set together with
   * its index entry, so a message changed meanwhile by another instance is never put in a stale index. Waiting
   * messages were already in the queue's schedule, and their leases are left alone.
   */
  async function buildIndexesOnRedis(): Promise<void> {
    if (await store.get(MAIL_META, INDEXES_MARKER)) return;
    const lock = await store.acquireLock('mail-indexes', 60_000);
    if (!lock) return; // another instance is building them
    try {
      if (await store.get(MAIL_META, INDEXES_MARKER)) return;
      let indexed = 0;
      let seen = 0;
      for (const listed of await store.list<MessageDoc>(MESSAGES)) {
        let doc: Doc<MessageDoc> | null = listed;
        while (doc && indexOf(doc.value.status) !== MAIL_QUEUE) {
          try {
            await store.put(MESSAGES, doc.id, doc.value, {
              ifVersion: doc.version,
              schedule: { queue: indexOf(doc.value.status), dueAt: indexScore(doc.value, keepSentMs) },
            });
            indexed++;
            break;
          } catch (err) {
            if (!(err instanceof VersionConflictError)) throw err;
            // Changed by a current version, which indexed it with that write; look again to be sure.
            doc = await store.get<MessageDoc>(MESSAGES, doc.id);
          }
        }
        if (++seen % 500 === 0) await lock.extend(60_000);
      }
      await store.put(MAIL_META, INDEXES_MARKER, { builtAt: clock.now(), indexed });
      if (indexed) log.info({ indexed }, 'held, failed and sent messages indexed');
    } finally {
      await lock.release();
    }
  }

  /**
   * Deletes sent messages past their retention; one instance at a time (a store lock). The sent index is keyed
   * by deletion time, so this claims exactly the expired ones, a batch at a time, and never reads the others.
   */
  async function cleanup(): Promise<number> {
    const lock = await store.acquireLock('mail-cleanup', 60_000);
    if (!lock) return 0;
    let removed = 0;
    try {
      for (;;) {
        const ids = await store.claimDue(SENT_INDEX, clock.now(), 60_000, CLEANUP_BATCH);
        for (const id of ids) {
          const doc = await store.get<MessageDoc>(MESSAGES, id);
          if (!doc || doc.value.status !== 'sent') {
            // Stale entry: the message is gone (or, against every write's moves, not sent): drop it.
            await store.unschedule(SENT_INDEX, id);
            continue;
          }
          const dueAt = indexScore(doc.value, keepSentMs);
          if (dueAt > clock.now()) {
            // Indexed under a shorter retention than the current one: back to its time.
            await store.schedule(SENT_INDEX, id, dueAt);
            continue;
          }
          try {
            if (
              await store.delete(MESSAGES, id, { ifVersion: doc.version, schedule: { queue: SENT_INDEX, dueAt: null } })
            )
              removed++;
          } catch (err) {
            // Changed meanwhile: its claim lapses and the next sweep looks again.
            if (!(err instanceof VersionConflictError)) throw err;
          }
        }
        if (ids.length < CLEANUP_BATCH || !(await lock.extend(60_000))) break;
      }
    } finally {
      await lock.release();
    }
    if (removed) log.info({ removed }, 'deleted sent messages past their retention');
    return removed;
  }

  return {
    async prepare() {
      if (!store.durableIndexes) await reindexOnFileStore();
      else await buildIndexesOnRedis().then(() => buildCountersOnRedis(store, log, [MAIL_QUEUE, HELD_INDEX], MESSAGES));
    },
    cleanup,
    sweepParked,
    start() {
      const sweep = () => void cleanup().catch((err: unknown) => log.warn({ err }, 'cleaning up sent messages failed'));
      sweepTimer = setInterval(sweep, SWEEP_EVERY_MS);
      sweepTimer.unref();
      sweep();
      parkedTimer = setInterval(() => {
        parkedSweep ??= sweepParked()
          .catch((err: unknown) => log.warn({ err }, 'sweeping parked messages failed'))
          .finally(() => {
            parkedSweep = null;
          });
      }, PARKED_SWEEP_EVERY_MS);
      parkedTimer.unref();
    },
    stop() {
      if (sweepTimer) clearInterval(sweepTimer);
      if (parkedTimer) clearInterval(parkedTimer);
      sweepTimer = null;
      parkedTimer = null;
    },
  };
}
