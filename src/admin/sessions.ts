import type { Documents } from '../store/store.js';
import type { Actor, AuditRecorder } from './types.js';

/**
 * "Log out every session": a generation number in the store that each browser session copies at login
 * and is checked against on every request. Raising it ends every session on every instance at once, on
 * both stores, without having to enumerate sessions.
 */

const SETTINGS = 'settings';
const GENERATION_ID = 'session_generation';

export class SessionGeneration {
  constructor(
    private readonly store: Documents,
    private readonly audit: AuditRecorder,
  ) {}

  async current(): Promise<number> {
    const doc = await this.store.get<{ generation: number }>(SETTINGS, GENERATION_ID);
    return doc?.value.generation ?? 0;
  }

  /** Raises the generation (audited, whichever door it came through); returns the new value. */
  async revokeAll(actor: Actor, ip?: string): Promise<number> {
    const generation = await this.#raise();
    await this.audit.record({
      actor,
      action: 'sessions.revoke_all',
      outcome: 'success',
      ...(ip ? { ip } : {}),
      detail: { generation },
    });
    return generation;
  }

  async #raise(): Promise<number> {
    for (;;) {
      const doc = await this.store.get<{ generation: number }>(SETTINGS, GENERATION_ID);
      const next = (doc?.value.generation ?? 0) + 1;
      try {
        await this.store.put(SETTINGS, GENERATION_ID, { generation: next }, { ifVersion: doc?.version ?? 0 });
        return next;
      } catch (err) {
        if (!(err instanceof Error) || err.name !== 'VersionConflictError') throw err;
      }
    }
  }
}
