import type { Logger } from '../log.js';
import type { CounterChange, ScheduleMove, Store } from '../store/store.js';
import { attentionMove } from '../oauth/integration-index.js';
import { INTEGRATIONS, type IntegrationRecord } from '../oauth/integrations.js';
import { GRANTS, type GrantRecord } from './grants.js';

/**
 * Indexes and counters over the grants, moved in the same write as the grant, so that readiness, the banner, the
 * gauges and an integration's secret rotation read what they need without listing every grant: at 100,000
 * mailboxes a list costs seconds and hundreds of megabytes, a schedule read or a counter costs one round trip.
 * The store's schedules serve as indexes here (id by time; the time only orders them).
 */

/** Grants that need re-authorization, by the time they turned. */
export const NEEDS_REAUTH_INDEX = 'oauth_grants_needs_reauth';
/** Marks the Redis data as indexed (data written before the indexes existed is indexed once). */
const MARKER_COLLECTION = 'oauth_meta';
const MARKER_ID = 'indexes-v1';

export type GrantCountState = 'active' | 'needs_reauth' | 'refresh_failing';
export const GRANT_STATES: readonly GrantCountState[] = ['active', 'needs_reauth', 'refresh_failing'];

export function grantCounter(state: GrantCountState): string {
  return `oauth_grants:${state}`;
}

/** The grants of one integration, by authorization time. */
export function integrationGrantsIndex(integrationId: string): string {
  return `oauth_grants_of:${integrationId}`;
}

export function grantCountState(g: GrantRecord): GrantCountState {
  if (g.status === 'needs_reauth') return 'needs_reauth';
  return g.failures > 0 && g.lastError !== null ? 'refresh_failing' : 'active';
}

/** The schedule moves and counter changes that keep the indexes right when `before` becomes `after`. */
export function grantIndexChanges(
  before: GrantRecord | null,
  after: GrantRecord | null,
  now: number,
): { schedule: ScheduleMove[]; count: CounterChange[] } {
  const schedule: ScheduleMove[] = [];
  const count: CounterChange[] = [];
  if (before && (!after || after.integrationId !== before.integrationId))
    schedule.push({ queue: integrationGrantsIndex(before.integrationId), dueAt: null });
  if (after) schedule.push({ queue: integrationGrantsIndex(after.integrationId), dueAt: after.authorizedAt });
  const wasReauth = before?.status === 'needs_reauth';
  const isReauth = after?.status === 'needs_reauth';
  if (isReauth && !wasReauth) schedule.push({ queue: NEEDS_REAUTH_INDEX, dueAt: after.lastError?.at ?? now });
  if (!isReauth && (wasReauth || !before)) schedule.push({ queue: NEEDS_REAUTH_INDEX, dueAt: null });
  const from = before ? grantCountState(before) : null;
  const to = after ? grantCountState(after) : null;
  if (from !== to) {
    if (from) count.push({ counter: grantCounter(from), delta: -1 });
    if (to) count.push({ counter: grantCounter(to), delta: 1 });
  }
  return { schedule, count };
}

/** Grants per state, from the counters. */
export async function grantCounts(store: Pick<Store, 'counters'>): Promise<Record<GrantCountState, number>> {
  const values = await store.counters(GRANT_STATES.map(grantCounter));
  return Object.fromEntries(GRANT_STATES.map((s, i) => [s, Math.max(0, values[i] ?? 0)])) as Record<
    GrantCountState,
    number
  >;
}

/**
 * Builds the indexes from the grants where they cannot be trusted: always on the embedded store (its counters live
 * in memory and its schedule lines follow the documents; it is exclusive, so nobody races the rebuild), once on
 * Redis for data written before the indexes existed (one instance, under a lock, then a marker).
 */
export async function ensureGrantIndexes(store: Store, log: Logger, now: number): Promise<void> {
  if (store.durableIndexes && (await store.get(MARKER_COLLECTION, MARKER_ID))) return;
  const lock = store.durableIndexes ? await store.acquireLock('grant-indexes', 600_000) : null;
  if (store.durableIndexes && !lock) return;
  try {
    if (store.durableIndexes && (await store.get(MARKER_COLLECTION, MARKER_ID))) return;
    const counts: Record<string, number> = Object.fromEntries(GRANT_STATES.map((s) => [grantCounter(s), 0]));
    let n = 0;
    for (const g of await store.list<GrantRecord>(GRANTS)) {
      const { schedule } = grantIndexChanges(null, g.value, now);
      for (const move of schedule)
        if (move.dueAt === null) await store.unschedule(move.queue, g.id);
        else await store.schedule(move.queue, g.id, move.dueAt);
      counts[grantCounter(grantCountState(g.value))]! += 1;
      n++;
    }
    await store.setCounters(counts);
    for (const i of await store.list<IntegrationRecord>(INTEGRATIONS)) {
      const move = attentionMove(i.value);
      if (move.dueAt === null) await store.unschedule(move.queue, i.id);
      else await store.schedule(move.queue, i.id, move.dueAt);
    }
    if (store.durableIndexes) {
      await store.put(MARKER_COLLECTION, MARKER_ID, { at: now, grants: n });
      log.info({ grants: n }, 'grant indexes built');
    }
  } finally {
    await lock?.release().catch(() => false);
  }
}
