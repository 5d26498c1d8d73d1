import type { Locks } from '../../store/store.js';

/**
 * Who may send now, per server (one server is one mailbox), so one mailbox's backlog or throttling never delays
 * another's:
 *
 *  - A server's `rateLimitPerMinute` holds across every instance: sending time is cut into slots of 60 s / rate
 *    and each message takes one slot with a store lock named after it (SET NX PX on Redis), so two instances
 *    never use the same slot. The sending is smooth (30/min is one message every 2 s), never a burst.
 *  - This instance delivers at most `perServerInFlight` messages of one server at a time while another server
 *    has mail waiting (`crowded`); more of the same server in a claim are parked (parking.ts), out of the way of
 *    the claims, so a backlog of thousands on one server is passed over instead of filling every slot. With
 *    nobody else waiting the cap would only slow the one mailbox down: it does not apply.
 *  - A provider's "too many" answer slows that server only, with a growing pause (in this instance).
 *
 * A message pushed back or parked keeps its status and attempts: it is only due later.
 */

export interface Pacer {
  /**
   * null: send now (call `done` afterwards); a time: put the message back in the queue, due then; `park`: the
   * server is at its in-flight cap and `crowded()` said another server has mail waiting. `crowded` is asked only
   * at the cap, and synchronously, so the messages of one claim batch see each other's counts.
   */
  admit(
    server: { id: string; rateLimitPerMinute?: number | null | undefined },
    crowded?: () => boolean,
  ): Promise<number | 'park' | null>;
  done(serverId: string, outcome: 'sent' | 'throttled' | 'other'): void;
  /** Deliveries of this server running in this instance. */
  inFlight(serverId: string): number;
  readonly perServerInFlight: number;
}
const SLOW_BASE_MS = 30_000;
const SLOW_MAX_MS = 15 * 60_000;

export function createPacer(deps: { locks: Locks; now: () => number; perServerInFlight: number }): Pacer {
  const inFlight = new Map<string, number>();
  /** The last slot this instance handed out per rate-limited server: spreads a backlog over the slots ahead. */
  const lastSlot = new Map<string, number>();
  const slow = new Map<string, { until: number; strikes: number }>();

  function release(serverId: string): void {
    const n = (inFlight.get(serverId) ?? 1) - 1;
    if (n <= 0) inFlight.delete(serverId);
    else inFlight.set(serverId, n);
  }

  return {
    perServerInFlight: deps.perServerInFlight,
    inFlight: (serverId) => inFlight.get(serverId) ?? 0,
    async admit(server, crowded = () => true) {
      const now = deps.now();
      const pause = slow.get(server.id);
      if (pause && pause.until > now) return pause.until;
      const running = inFlight.get(server.id) ?? 0;
      if (running >= deps.perServerInFlight && crowded()) return 'park';
      // Counted before any await, so messages of one claim batch see each other.
      inFlight.set(server.id, running + 1);
      const rate = server.rateLimitPerMinute;
      if (!rate) return null;
      const interval = 60_000 / rate;
      const slot = Math.floor(now / interval);
      // The slot's lock outlives the slot; its name, not its expiry, keeps the slot used.
      const lock = await deps.locks.acquireLock(`server-rate:${server.id}:${rate}:${slot}`, 60_000 + interval * 2);
      if (lock) return null;
      release(server.id);
      const next = Math.max(slot + 1, (lastSlot.get(server.id) ?? 0) + 1);
      lastSlot.set(server.id, next);
      return Math.ceil(next * interval);
    },
    done(serverId, outcome) {
      release(serverId);
      if (outcome === 'throttled') {
        const strikes = (slow.get(serverId)?.strikes ?? 0) + 1;
        const wait = Math.min(SLOW_MAX_MS, SLOW_BASE_MS * 2 ** (strikes - 1));
        slow.set(serverId, { until: deps.now() + wait, strikes });
      } else if (outcome === 'sent') slow.delete(serverId);
      if (slow.size > 10_000) for (const [id, p] of slow) if (p.until <= deps.now()) slow.delete(id);
      if (lastSlot.size > 10_000) lastSlot.clear();
    },
  };
}

/** A provider's answer that means "too many for now" (per-mailbox throttling), not a problem with the message. */
export function isThrottled(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { responseCode, response, message } = error as {
    responseCode?: unknown;
    response?: unknown;
    message?: unknown;
  };
  const code = typeof responseCode === 'number' ? responseCode : 0;
  if (![421, 432, 450, 451, 452, 454].includes(code)) return false;
  const text = `${typeof response === 'string' ? response : ''} ${typeof message === 'string' ? message : ''}`;
  // A recipient's "busy, try again later" (4.3.0, greylisting) is not the mailbox being throttled: only words
  // of rate and limits count, and Microsoft's and Google's 421 4.7.0 connection throttling.
  return (
    /too many (?!recipients)|rate limit|throttl|exceeded|quota/i.test(text) || (code === 421 && /4\.7\.0/.test(text))
  );
}
