import type { Logger } from '../../log.js';
import type { Schedules } from '../../store/store.js';

/**
 * The leases of the messages this instance is delivering. A claim (`claimDue`) moves a message's due time to
 * `now + leaseMs`; while the delivery runs, a heartbeat pushes it out again every `heartbeatMs`, so a long send
 * keeps its message and a dead instance's messages become due again within one lease.
 *
 * Leases are short (seconds): a killed instance's claims, and the claims a restarted instance held before it
 * died, are retried within one lease by whichever worker claims first. No owner is recorded: a restarted
 * instance cannot tell its old claims from a live peer's, and waiting one short lease is what makes that safe.
 */
export interface LeaseKeeper {
  /** Starts extending this message's lease. */
  hold(id: string): void;
  /**
   * Stops extending it before its schedule entry is changed: a heartbeat already running finishes first, later
   * ones skip it, so no extension lands after the caller's write.
   */
  end(id: string): Promise<void>;
  readonly leaseMs: number;
  start(): void;
  stop(): Promise<void>;
}

export interface LeaseOptions {
  store: Schedules;
  queue: string;
  log: Logger;
  leaseMs: number;
  heartbeatMs: number;
  /** The queue's clock (leases are due times on it); default the system clock. */
  now?: () => number;
}

export function createLeaseKeeper(options: LeaseOptions): LeaseKeeper {
  const { store, queue, log, leaseMs, heartbeatMs } = options;
  const now = options.now ?? Date.now;
  const leased = new Set<string>();
  let timer: NodeJS.Timeout | null = null;
  let beat: Promise<void> | null = null;
  let warned = false;

  function extend(): void {
    if (beat || leased.size === 0) return;
    const ids = [...leased];
    const until = now() + leaseMs;
    beat = (async () => {
      for (const id of ids) if (leased.has(id)) await store.schedule(queue, id, until);
      warned = false;
    })()
      .catch((err: unknown) => {
        // A store outage: the next beat tries again; one warning per outage is enough.
        if (!warned) log.warn({ err }, 'extending mail leases failed');
        warned = true;
      })
      .finally(() => {
        beat = null;
      });
  }

  return {
    leaseMs,
    hold(id) {
      leased.add(id);
    },
    async end(id) {
      leased.delete(id);
      if (beat) await beat;
    },
    start() {
      if (timer) return;
      timer = setInterval(extend, heartbeatMs);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = null;
      if (beat) await beat;
    },
  };
}
