import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFileStore } from '../../src/store/file-store.js';
import { createRedisStore } from '../../src/store/redis-store.js';
import {
  CounterLimitError,
  VersionConflictError,
  type Counters,
  type Documents,
  type Schedules,
} from '../../src/store/store.js';
import { redisUrlForTests, uniquePrefix } from '../fakes/redis.js';

// The counters capability and the `count` write option of documents, on both stores: counters change with the
// write, atomically, and a limit refuses the whole write (document, schedules and counters untouched).

/** What these tests see of a store: documents, the counters their writes change, and the schedules a refused write must leave alone. */
type CountedDocuments = Documents & Counters & Schedules;

const stores: [string, () => Promise<{ store: CountedDocuments; close: () => Promise<void> }>][] = [
  [
    'file',
    async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-counters-'));
      const store = await createFileStore(dir);
      return { store, close: async () => (await store.close(), await rm(dir, { recursive: true, force: true })) };
    },
  ],
];
const redisUrl = redisUrlForTests();
if (redisUrl)
  stores.push([
    'redis',
    async () => {
      const store = await createRedisStore({ url: redisUrl, prefix: uniquePrefix('counters') });
      return { store, close: () => store.close() };
    },
  ]);

for (const [kind, open] of stores) {
  describe(`store counters (${kind})`, () => {
    let store: CountedDocuments;
    let close: () => Promise<void>;
    beforeAll(async () => ({ store, close } = await open()));
    afterAll(async () => close());

    it('applies counter changes with puts and deletes, and refuses a write that would pass a max', async () => {
      const take = (n: number) => ({
        count: [
          { counter: 'c', delta: 1, max: 2 },
          { counter: 'bytes', delta: n, max: 100 },
        ],
      });
      await store.put('docs', 'a', { n: 1 }, take(40));
      await store.put('docs', 'b', { n: 2 }, take(40));
      expect(await store.counters(['c', 'bytes', 'never'])).toEqual([2, 80, 0]);
      await expect(
        store.put('docs', 'c', { n: 3 }, { ...take(1), schedule: { queue: 'q', dueAt: 5 } }),
      ).rejects.toBeInstanceOf(CounterLimitError);
      expect(await store.get('docs', 'c')).toBeNull();
      expect(await store.scheduleStats('q')).toEqual({ count: 0, earliestDueAt: null });
      expect(await store.counters(['c', 'bytes'])).toEqual([2, 80]);
      // A version conflict changes no counter either.
      await expect(
        store.put('docs', 'a', { n: 9 }, { ifVersion: 7, count: [{ counter: 'c', delta: -1 }] }),
      ).rejects.toBeInstanceOf(VersionConflictError);
      await store.delete('docs', 'a', {
        count: [
          { counter: 'c', delta: -1 },
          { counter: 'bytes', delta: -40 },
        ],
      });
      // Deleting what is not there gives nothing back.
      await store.delete('docs', 'a', {
        count: [
          { counter: 'c', delta: -1 },
          { counter: 'bytes', delta: -40 },
        ],
      });
      expect(await store.counters(['c', 'bytes'])).toEqual([1, 40]);
      await expect(store.put('docs', 'c', { n: 3 }, take(61))).rejects.toMatchObject({
        counter: 'bytes',
        current: 40,
        max: 100,
      });
      await store.put('docs', 'c', { n: 3 }, take(60));
      await store.setCounters({ c: 0 });
      expect(await store.counters(['c', 'bytes'])).toEqual([0, 100]);
    });
  });
}
