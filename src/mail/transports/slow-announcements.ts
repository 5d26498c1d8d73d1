import type { Logger } from '../../log.js';
import type { Store } from '../../store/store.js';
import type { MailboxGate } from './mailbox-gate.js';

/**
 * A provider's "slow down" for a mailbox (429 with Retry-After, a quota) is told to every instance over the
 * store's pub/sub, so the mailbox waits on all of them, not only on the one that was answered. One publish per
 * rate-limit answer; nothing is read on the sending path. A lost announcement costs one more 429, no mail.
 */

export const MAILBOX_SLOW_CHANNEL = 'mail-api-slow';

export interface SlowAnnouncements {
  announce(key: string, until: number): void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createSlowAnnouncements(deps: {
  store: Pick<Store, 'publish' | 'subscribe'>;
  gate: MailboxGate;
  log: Logger;
}): SlowAnnouncements {
  let unsubscribe: (() => Promise<void>) | null = null;
  return {
    announce(key, until) {
      deps.store
        .publish(MAILBOX_SLOW_CHANNEL, JSON.stringify({ key, until }))
        .catch((err: unknown) => deps.log.warn({ err }, 'announcing a slowed mailbox failed'));
    },
    async start() {
      unsubscribe ??= await deps.store.subscribe(MAILBOX_SLOW_CHANNEL, (message) => {
        try {
          const { key, until } = JSON.parse(message) as { key?: unknown; until?: unknown };
          if (typeof key === 'string' && typeof until === 'number' && Number.isFinite(until))
            deps.gate.slow(key, until);
        } catch {
          // Not ours: ignored.
        }
      });
    },
    async stop() {
      const u = unsubscribe;
      unsubscribe = null;
      if (u) await u();
    },
  };
}
