import type { Clock } from '../../clock.js';
import { VersionConflictError, type Store } from '../../store/store.js';
import type { SmtpServers } from '../servers.js';
import type { Messages } from './messages.js';
import { ALL, HELD_INDEX, type HeldReason, type MessageDoc } from './model.js';

/** Held messages: released when their reason goes away (a server resumed, outgoing mail switched on). */
export interface Holds {
  /** Held messages matching `filter` (among `only`, or every held one) → queued now. */
  release(filter: (m: MessageDoc) => boolean, only?: string[]): Promise<number>;
  /**
   * After a message was held: a resume (or the switch turned on) between the check and the write would have
   * missed it, so the stored state (not a cache) is read again and the message released if the reason is gone.
   */
  recheck(id: string, serverId: string, reason: HeldReason): Promise<void>;
}

export function createHolds(deps: {
  store: Store;
  servers: SmtpServers;
  messages: Messages;
  clock: Clock;
  wake: () => void;
}): Holds {
  const { store, servers, messages, clock } = deps;

  async function release(filter: (m: MessageDoc) => boolean, only?: string[]): Promise<number> {
    let released = 0;
    const ids = only ?? (await store.scheduled(HELD_INDEX, { limit: ALL })).map((e) => e.id);
    for (const doc of await messages.read(ids)) {
      if (doc.value.status !== 'held' || !filter(doc.value)) continue;
      const now = clock.now();
      try {
        await messages.put(
          doc.id,
          { ...doc.value, status: 'queued', heldReason: null, nextAttemptAt: now, updatedAt: now },
          doc.version,
          'held',
        );
      } catch (err) {
        if (err instanceof VersionConflictError) continue;
        throw err;
      }
      released++;
    }
    if (released) deps.wake();
    return released;
  }

  return {
    release,
    async recheck(id, serverId, reason) {
      const stillHeld =
        reason === 'server_paused' ? await servers.isPausedNow(serverId) : !(await servers.sendingEnabled());
      if (!stillHeld) await release((m) => m.serverId === serverId && m.heldReason === reason, [id]);
    },
  };
}
