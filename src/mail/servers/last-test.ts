import type { Store } from '../../store/store.js';

/**
 * The last Test connection or Send test email of each stored server, kept beside the configuration (like
 * pauses) so the list can say "Last test failed" on every instance. Tests of unsaved values are not stored.
 */

export const LAST_TESTS = 'smtp_server_tests';

export interface LastTest {
  ok: boolean;
  kind: 'connection' | 'email';
  /** Diagnosis code on failure. */
  code: string | null;
  at: string;
}

export interface LastTests {
  get(serverId: string): Promise<LastTest | null>;
  record(serverId: string, test: Omit<LastTest, 'at'>): Promise<void>;
  clear(serverId: string): Promise<void>;
}

export function createLastTests(store: Store, now: () => number = Date.now): LastTests {
  return {
    async get(serverId) {
      return (await store.get<LastTest>(LAST_TESTS, serverId))?.value ?? null;
    },
    async record(serverId, test) {
      // Last writer wins: a result is a fact about a moment, not a document two editors merge.
      await store.put(LAST_TESTS, serverId, { ...test, at: new Date(now()).toISOString() });
    },
    async clear(serverId) {
      await store.delete(LAST_TESTS, serverId);
    },
  };
}
