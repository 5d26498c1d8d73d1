import type { Logger } from '../../log.js';
import type { ScheduledEntry, Schedules } from '../../store/store.js';
import { ALL, MAIL_QUEUE } from './model.js';

/**
 * Parked messages: a claimed message whose server is at this instance's in-flight cap (pacing.ts) while another
 * server has mail waiting leaves the global schedule for a schedule of its server, so the claims that follow
 * reach the other servers' messages behind a backlog instead of claiming the backlog again and again.
 *
 *   schedule "mail_parked:<serverId>"  parked ids of one server, by the time they were parked
 *   schedule "mail_parked_servers"     servers with parked mail, by the time their mark goes stale (last park + 30 s)
 *
 * A parked message keeps its status (queued or deferred), attempts and document: only its schedule entry moved,
 * so it is still waiting and every reader of the waiting queue reads the parked schedules too (admin.ts,
 * browse.ts). It goes back to the global schedule, due at once, when a delivery of its server ends in the
 * instance that parked it, when an instance's claims come back short (room nobody else wants), and in the
 * sweep once its server's mark is stale (the parking instance stopped or died). Only schedule operations of the
 * Store interface are used, so it works on the file store, on Redis and on a Redis Cluster (every schedule lives
 * in the data's hash slot).
 */

export const PARKED_SERVERS = 'mail_parked_servers';
export const PARKED_MARK_MS = 30_000;
/**
 * An unparked id is first claimed in its parked schedule with a lease this long, then put in the global one only
 * if it is not there already, then dropped from the parked one. The claim makes two instances (or two finished
 * deliveries) that unpark at once take different ids; "only if absent" keeps a put-back from overwriting the
 * lease of a worker that claimed the id meanwhile (which would let a second worker send it too). After a crash
 * between the steps the parked entry is due again when this lease ends and is put back then; a copy that was
 * already delivered is dropped as stale by the worker that claims it.
 */
const UNPARK_LEASE_MS = 15_000;
/** A server's mark is written at most this often by one instance (it only has to stay fresh). */
const MARK_EVERY_MS = 1_000;
/** Servers the sweep looks at per tick. */
const SWEEP_SERVERS = 20;
/**
 * Servers with parked mail that readers of the whole waiting queue (the overview, the queue page) look at: their
 * cost must not grow with the number of mailboxes. Beyond it, parked messages are missing from those readings.
 */
export const PARKED_SERVERS_READ = 100;

export function parkedQueue(serverId: string): string {
  return `mail_parked:${serverId}`;
}

export interface Parking {
  /** Moves a claimed message (its lease ended) from the global schedule to its server's parked schedule. */
  park(id: string, serverId: string): Promise<void>;
  /** Moves up to `n` of the earliest parked messages of a server back to the global schedule, due now. */
  unpark(serverId: string, n: number): Promise<number>;
  /** Whether this instance parked or unparked messages of this server within the mark's window. */
  hinted(serverId: string): boolean;
  /** Servers with parked mail, earliest mark first. */
  servers(limit: number): Promise<ScheduledEntry[]>;
  /**
   * What the readers of the whole waiting queue add to the global schedule: the parked messages of at most
   * PARKED_SERVERS_READ servers (their count, and up to `limitPerServer` entries of each).
   */
  read(limitPerServer: number): Promise<{ count: number; entries: ScheduledEntry[] }>;
  /** Servers whose mark is stale get up to `perServer` unparked; marks of empty parked schedules are dropped. */
  sweep(perServer: number): Promise<number>;
  /** Every parked message back to the global schedule's care (the file store's start rebuilds it). */
  clear(): Promise<void>;
}

export function createParking(deps: { store: Schedules; now: () => number; log: Logger }): Parking {
  const { store, now, log } = deps;
  /** Server → when this instance last parked or unparked one of its messages. */
  const hints = new Map<string, number>();
  /** Server → when this instance last wrote its mark. */
  const marked = new Map<string, number>();

  function hint(serverId: string): void {
    if (hints.size > 10_000) hints.clear();
    hints.set(serverId, now());
  }

  function hinted(serverId: string): boolean {
    const at = hints.get(serverId);
    if (at === undefined) return false;
    if (now() - at < PARKED_MARK_MS) return true;
    hints.delete(serverId);
    return false;
  }

  async function mark(serverId: string): Promise<void> {
    const at = now();
    if (at - (marked.get(serverId) ?? -Infinity) < MARK_EVERY_MS) return;
    if (marked.size > 10_000) marked.clear();
    marked.set(serverId, at);
    await store.schedule(PARKED_SERVERS, serverId, at + PARKED_MARK_MS);
  }

  async function unpark(serverId: string, n: number): Promise<number> {
    if (n <= 0) return 0;
    const queue = parkedQueue(serverId);
    const ids = await store.claimDue(queue, now(), UNPARK_LEASE_MS, n);
    for (const id of ids) {
      await store.schedule(MAIL_QUEUE, id, now(), { onlyIfAbsent: true });
      await store.unschedule(queue, id);
    }
    if (ids.length) hint(serverId);
    return ids.length;
  }

  return {
    async park(id, serverId) {
      hint(serverId);
      const queue = parkedQueue(serverId);
      // Parked first, then out of the global schedule, then due: a crash in between leaves it in both (the copy
      // left behind is dropped as stale once the message is finished) or parked, due when the unpark lease would
      // end. Parked due at once, an unpark running meanwhile (a delivery of the server ending, another instance)
      // would find the id still in the global schedule, skip the put-back and drop the parked entry, and this park
      // would then take it out of the global one: in neither schedule, the message was never sent.
      await store.schedule(queue, id, now() + UNPARK_LEASE_MS);
      await mark(serverId);
      await store.unschedule(MAIL_QUEUE, id);
      await store.schedule(queue, id, now());
    },
    unpark,
    hinted,
    servers: (limit) => store.scheduled(PARKED_SERVERS, { limit }),
    async read(limitPerServer) {
      let count = 0;
      const entries: ScheduledEntry[] = [];
      for (const { id: serverId } of await store.scheduled(PARKED_SERVERS, { limit: PARKED_SERVERS_READ })) {
        const queue = parkedQueue(serverId);
        const [stats, listed] = await Promise.all([
          store.scheduleStats(queue),
          store.scheduled(queue, { limit: limitPerServer }),
        ]);
        count += stats.count;
        entries.push(...listed);
      }
      return { count, entries };
    },
    async sweep(perServer) {
      let moved = 0;
      // Claiming the stale marks pushes them a window ahead, so two instances' sweeps do not take the same ones.
      for (const serverId of await store.claimDue(PARKED_SERVERS, now(), PARKED_MARK_MS, SWEEP_SERVERS)) {
        const n = await unpark(serverId, perServer);
        moved += n;
        if (n > 0) continue;
        if ((await store.scheduleStats(parkedQueue(serverId))).count > 0) continue;
        await store.unschedule(PARKED_SERVERS, serverId);
        // Parked by another instance between the count and the removal: its mark goes back.
        if ((await store.scheduleStats(parkedQueue(serverId))).count > 0)
          await store.schedule(PARKED_SERVERS, serverId, now() + PARKED_MARK_MS);
      }
      if (moved) log.info({ messages: moved }, 'parked messages of idle servers put back in the queue');
      return moved;
    },
    async clear() {
      for (const { id: serverId } of await store.scheduled(PARKED_SERVERS, { limit: ALL })) {
        const queue = parkedQueue(serverId);
        for (const e of await store.scheduled(queue, { limit: ALL })) await store.unschedule(queue, e.id);
        await store.unschedule(PARKED_SERVERS, serverId);
      }
    },
  };
}
