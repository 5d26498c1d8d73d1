import type { Logger } from '../../log.js';
import type { Schedules } from '../../store/store.js';

/**
 * Which servers have mail waiting, roughly, across every instance: the fairness cap (pacing.ts) is only worth
 * its cost when another mailbox is waiting behind a backlog. A single-mailbox installation has nobody to be fair
 * to, so its backlog goes out at the instance's full width and nothing is parked.
 *
 * A schedule of marks, one per server, scored by when a message of it was last queued, claimed or is due
 * (whichever is latest). Another server counts as waiting while its mark is within ACTIVE_WINDOW_MS of now,
 * either side: a deferral due in an hour counts from an hour minus the window on, so a retry that comes due
 * behind a backlog finds the cap in force. Each instance writes a server's mark at most once per TOUCH_EVERY_MS
 * (a local memo), and reads the earliest marks at most once per LOOK_EVERY_MS, in the background: the question
 * is asked for every message at the cap and must not wait for the store.
 */

export const ACTIVE_SERVERS = 'mail_active_servers';
export const ACTIVE_WINDOW_MS = 60_000;
const TOUCH_EVERY_MS = 5_000;
const LOOK_EVERY_MS = 250;
/** Marks read per look; stale ones among them are dropped as they are seen. */
const LOOK_LIMIT = 16;

export interface ServerActivity {
  /** A message of this server is waiting, due at `dueAt` (default now). */
  touch(serverId: string, dueAt?: number | null): Promise<void>;
  /**
   * Whether a server other than this one had mail waiting lately, from marks read at most LOOK_EVERY_MS ago (a
   * newer read starts in the background). False until the first read (`refresh`, done before the workers start).
   */
  othersWaiting(serverId: string): boolean;
  /** Reads the marks now. */
  refresh(): Promise<void>;
}

export function createServerActivity(deps: { store: Schedules; now: () => number; log: Logger }): ServerActivity {
  const { store, now, log } = deps;
  /** The score this instance last wrote per server. */
  const written = new Map<string, number>();
  /** Marks of the last look (server → score), plus what this instance wrote since. */
  let marks: Map<string, number> | null = null;
  let lookedAt = -Infinity;
  let looking: Promise<void> | null = null;

  async function look(): Promise<void> {
    const at = now();
    lookedAt = at;
    const entries = await store.scheduled(ACTIVE_SERVERS, { limit: LOOK_LIMIT });
    const fresh = new Map<string, number>();
    let stale = 0;
    for (const e of entries) {
      if (e.dueAt >= at - ACTIVE_WINDOW_MS) fresh.set(e.id, e.dueAt);
      else {
        stale++;
        await store.unschedule(ACTIVE_SERVERS, e.id);
      }
    }
    // A page of stale marks only: the next look reads past them; meanwhile assume someone is waiting.
    if (stale === entries.length && stale === LOOK_LIMIT) fresh.set('', at);
    marks = fresh;
  }

  return {
    refresh: look,
    async touch(serverId, dueAt) {
      const score = Math.max(now(), dueAt ?? 0);
      if (score < (written.get(serverId) ?? -Infinity) + TOUCH_EVERY_MS) return;
      if (written.size > 10_000) written.clear();
      written.set(serverId, score);
      marks?.set(serverId, score);
      await store.schedule(ACTIVE_SERVERS, serverId, score);
    },
    othersWaiting(serverId) {
      const at = now();
      if (at - lookedAt >= LOOK_EVERY_MS && !looking)
        looking = look()
          .catch((err: unknown) => log.warn({ err }, 'reading which servers have mail waiting failed'))
          .finally(() => {
            looking = null;
          });
      if (!marks) return false;
      for (const [id, score] of marks)
        if (id !== serverId && score >= at - ACTIVE_WINDOW_MS && score <= at + ACTIVE_WINDOW_MS) return true;
      return false;
    },
  };
}
