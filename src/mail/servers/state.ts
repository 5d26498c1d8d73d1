import type { Logger } from '../../log.js';
import { VersionConflictError, type Doc, type Store } from '../../store/store.js';
import { PAUSES, SETTINGS, SETTINGS_ID, type PauseDoc, type SettingsDoc } from './model.js';

/**
 * The servers' run-time state, beside their configuration: the mail settings (outgoing switch, default server)
 * and the pauses of servers whose credentials were rejected. Both are cached; `announce` tells every instance
 * to forget what it cached.
 */

export interface MailSettingsState {
  /** Cached until forgotten. */
  read(): Promise<Doc<SettingsDoc> | null>;
  /** A compare-and-set change of the settings, retried on a concurrent one, then announced. */
  update(change: (s: SettingsDoc) => SettingsDoc): Promise<SettingsDoc>;
  forget(): void;
}

export function createMailSettingsState(deps: { store: Store; announce: () => Promise<void> }): MailSettingsState {
  const { store } = deps;
  let cache: Promise<Doc<SettingsDoc> | null> | null = null;
  return {
    read() {
      cache ??= store.get<SettingsDoc>(SETTINGS, SETTINGS_ID).catch((err: unknown) => {
        cache = null;
        throw err;
      });
      return cache;
    },
    async update(change) {
      for (let attempt = 0; ; attempt++) {
        const current = await store.get<SettingsDoc>(SETTINGS, SETTINGS_ID);
        const value = change(current?.value ?? { outgoingEnabled: true, defaultServerId: null });
        try {
          await store.put(SETTINGS, SETTINGS_ID, value, { ifVersion: current?.version ?? 0 });
          await deps.announce();
          return value;
        } catch (err) {
          if (!(err instanceof VersionConflictError) || attempt >= 5) throw err;
        }
      }
    },
    forget() {
      cache = null;
    },
  };
}

export interface ServerPauses {
  /** Cached until forgotten. */
  pauseOf(id: string): Promise<PauseDoc | null>;
  /** Read from the store, never the cache: for a decision a concurrent resume must not slip past. */
  isPausedNow(id: string): Promise<boolean>;
  pause(id: string, pause: { reason: string; code: string }): Promise<void>;
  unpause(id: string): Promise<boolean>;
  /** Deletes the pause of a deleted server (the caller announces the deletion). */
  clear(id: string): Promise<void>;
  forget(id: string): void;
}

export function createServerPauses(deps: {
  store: Store;
  log: Logger;
  announce: (id: string) => Promise<void>;
}): ServerPauses {
  const { store, log, announce } = deps;
  const cache = new Map<string, Promise<PauseDoc | null>>();
  return {
    async pauseOf(id) {
      let cached = cache.get(id);
      if (!cached) {
        cached = store.get<PauseDoc>(PAUSES, id).then((d) => d?.value ?? null);
        cache.set(id, cached);
        cached.catch(() => cache.delete(id));
      }
      return cached;
    },
    async isPausedNow(id) {
      return (await store.get(PAUSES, id)) !== null;
    },
    async pause(id, pause) {
      const existing = await store.get<PauseDoc>(PAUSES, id);
      if (existing) return;
      try {
        await store.put(PAUSES, id, { ...pause, at: new Date().toISOString() }, { ifVersion: 0 });
      } catch (err) {
        if (err instanceof VersionConflictError) return; // another worker paused it first
        throw err;
      }
      log.warn(
        { serverId: id, code: pause.code },
        'SMTP server paused: its credentials were rejected; messages are held until they change',
      );
      await announce(id);
    },
    async unpause(id) {
      const deleted = await store.delete(PAUSES, id);
      if (deleted) await announce(id);
      return deleted;
    },
    async clear(id) {
      await store.delete(PAUSES, id);
    },
    forget(id) {
      cache.delete(id);
    },
  };
}
