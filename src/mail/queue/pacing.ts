import type { Locks } from '../../store/store.js';

/**
 * Who may send now, per server (one server is one mailbox), so one mailbox's backlog or throttling never delays
 * another's:
 *
 *  - A server's `rateLimitPerMinute` holds across every instance: sending time is cut into slots of 60 s / rate
 *    and each message takes one slot with a store lock named after it (SET NX PX on Redis), so two instances
 *    never use the same slot. The sending is smooth (30/min is one message every 2 s), never a burst.
 *  - This instance delivers at most `perServerInFlight` messages of one server at a time. As many more wait here
 *    for the next free slot of their server (each takes it the moment a send of that server ends); the rest of
 *    a claim is put back a moment later, behind what other servers have waiting, so a backlog of thousands on
 *    one server is passed over by the claims instead of filling every slot (sending and waiting, a server holds
 *    at most twice its cap). Putting back every message over the cap made a burst of one server leave in waves
 *    a second apart: the messages put back together came due together, and all but the cap went back again.
 *  - A provider's "too many" answer slows that server only, with a growing pause (in this instance).
 *
 * A message pushed back keeps its status and attempts: it is only due later.
 */

export interface Pacer {
  /** null: send now (call `done` afterwards); a time: put the message back in the queue, due then. */
  admit(server: { id: string; rateLimitPerMinute?: number | null | undefined }): Promise<number | null>;
  done(serverId: string, outcome: 'sent' | 'throttled' | 'other'): void;
}

/** How long a message of a server at its in-flight cap waits before it is claimable again. */
export const PUSHBACK_MS = 1000;
const SLOW_BASE_MS = 30_000;
const SLOW_MAX_MS = 15 * 60_000;

export function createPacer(deps: { locks: Locks; now: () => number; perServerInFlight: number }): Pacer {
  const inFlight = new Map<string, number>();
  /** The last slot this instance handed out per rate-limited server: spreads a backlog over the slots ahead. */
  const lastSlot = new Map<string, number>();
  const slow = new Map<string, { until: number; strikes: number }>();
  /** Per server, the messages over its cap waiting for one of its slots, first come first served. */
  const waiting = new Map<string, Array<() => void>>();

  /** A slot of the server is free: the first message waiting for one takes it over, else it is given back. */
  function release(serverId: string): void {
    const line = waiting.get(serverId);
    const next = line?.shift();
    if (line?.length === 0) waiting.delete(serverId);
    if (next) return next();
    const n = (inFlight.get(serverId) ?? 1) - 1;
    if (n <= 0) inFlight.delete(serverId);
    else inFlight.set(serverId, n);
  }

  /** A slot of the server now, a promise of one (resolved when it is this message's), or null when the line is full. */
  function takeSlot(serverId: string): 'taken' | Promise<void> | null {
    const running = inFlight.get(serverId) ?? 0;
    if (running < deps.perServerInFlight) {
      inFlight.set(serverId, running + 1);
      return 'taken';
    }
    const line = waiting.get(serverId) ?? [];
    if (line.length >= deps.perServerInFlight) return null;
    waiting.set(serverId, line);
    return new Promise<void>((resolve) => line.push(resolve));
  }

  return {
    async admit(server) {
      const now = deps.now();
      const pause = slow.get(server.id);
      if (pause && pause.until > now) return pause.until;
      // Counted before any await, so messages of one claim batch see each other.
      const slot = takeSlot(server.id);
      if (slot === null) return now + PUSHBACK_MS;
      if (slot !== 'taken') {
        await slot;
        // Throttled while this one waited: the slot goes on, the message waits for the pause.
        const throttled = slow.get(server.id);
        if (throttled && throttled.until > deps.now()) {
          release(server.id);
          return throttled.until;
        }
      }
      const rate = server.rateLimitPerMinute;
      if (!rate) return null;
      const interval = 60_000 / rate;
      const rateSlot = Math.floor(deps.now() / interval);
      // The slot's lock outlives the slot; its name, not its expiry, keeps the slot used.
      const lock = await deps.locks.acquireLock(`server-rate:${server.id}:${rate}:${rateSlot}`, 60_000 + interval * 2);
      if (lock) return null;
      release(server.id);
      const next = Math.max(rateSlot + 1, (lastSlot.get(server.id) ?? 0) + 1);
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
