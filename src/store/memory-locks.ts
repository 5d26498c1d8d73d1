import { randomBytes } from 'node:crypto';
import { checkName } from './names.js';
import type { Lock, Locks } from './store.js';

/** Locks of the embedded store: one process has the data folder, so its memory is where locks are held. */
export class MemoryLocks implements Locks {
  readonly #locks = new Map<string, { owner: string; expiresAt: number }>();
  readonly #assertOpen: () => void;

  constructor(assertOpen: () => void) {
    this.#assertOpen = assertOpen;
  }

  async acquireLock(name: string, ttlMs: number): Promise<Lock | null> {
    checkName('lock name', name);
    if (!(ttlMs > 0) || !Number.isFinite(ttlMs))
      throw new Error(`lock ${name}: ttlMs must be a positive number, got ${ttlMs}`);
    this.#assertOpen();
    const now = Date.now();
    const held = this.#locks.get(name);
    if (held && held.expiresAt > now) return null;
    // Expired locks are only overwritten on re-acquire; drop them now and then so unique names do not pile up.
    if (this.#locks.size > 1000)
      for (const [key, lock] of this.#locks) if (lock.expiresAt <= now) this.#locks.delete(key);
    const owner = randomBytes(16).toString('hex');
    this.#locks.set(name, { owner, expiresAt: now + ttlMs });
    const locks = this.#locks;
    const holds = (): boolean => {
      const current = locks.get(name);
      return current !== undefined && current.owner === owner && current.expiresAt > Date.now();
    };
    return {
      name,
      owner,
      release: async () => {
        if (!holds()) return false;
        locks.delete(name);
        return true;
      },
      extend: async (ms: number) => {
        if (!holds()) return false;
        locks.set(name, { owner, expiresAt: Date.now() + ms });
        return true;
      },
    };
  }
}
