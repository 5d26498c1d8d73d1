import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisStore } from '../../src/store/redis-store.js';
import { CounterLimitError, VersionConflictError } from '../../src/store/store.js';
import type { StoreWithSessions } from '../../src/store/sessions.js';
import { onPath } from '../fakes/binaries.js';
import { freePort } from '../fakes/net.js';
import { commandsBetween, commandStats } from '../fakes/redis-commands.js';
import { spawnRedisServer } from '../fakes/redis-server.js';
import { uniquePrefix } from '../fakes/redis.js';

// What the store's hot operations cost Redis, in commands (INFO commandstats, commands inside scripts included).
// Puts issued together go to Redis as one script call: each keeps its own compare-and-set, counter limit and
// schedule moves, and what they share (the call, counters, schedules, indexes) is paid once per batch. A claim
// costs the same few commands whatever it takes. A Redis of its own, so the counts are this test's only.

const binary = onPath('redis-server');

describe.runIf(binary)('Redis commands of puts and claims', () => {
  let redis: ChildProcess;
  let dir: string;
  let url: string;
  let store: StoreWithSessions;

  beforeAll(async () => {
    const port = await freePort();
    dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-put-batch-'));
    redis = await spawnRedisServer(binary!, port, dir);
    url = `redis://127.0.0.1:${port}`;
    store = await createRedisStore({ url, prefix: uniquePrefix('batch') });
  });
  afterAll(async () => {
    await store.close();
    redis.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  it('costs Redis few commands per put when puts with counters and schedule moves come together', async () => {
    const before = await commandStats(url);
    const count = [
      { counter: 'n', delta: 1, max: 1000 },
      { counter: 'bytes', delta: 10, max: 100_000 },
    ];
    await Promise.all(
      Array.from({ length: 64 }, (_, i) =>
        store.put('mail', `m${i}`, { i }, { ifVersion: 0, count, schedule: { queue: 'q', dueAt: i } }),
      ),
    );
    const used = commandsBetween(before, await commandStats(url)).filter(([name]) => name !== 'info');
    const perPut = used.reduce((sum, [, calls]) => sum + calls, 0) / 64;
    // Its own document costs a put two commands (the version read and the write); the rest is shared.
    expect(perPut).toBeLessThanOrEqual(2.5);
    expect(await store.counters(['n', 'bytes'])).toEqual([64, 640]);
    expect(await store.scheduleStats('q')).toEqual({ count: 64, earliestDueAt: 0 });
    expect((await store.list('mail')).length).toBe(64);
    expect(await store.collections()).toContain('mail');
  });

  it('claims a batch of due ids with a fixed number of commands', async () => {
    await Promise.all(Array.from({ length: 50 }, (_, i) => store.schedule('claims', `id${i}`, i)));
    // The first use of a script loads it (EVALSHA answered NOSCRIPT, then EVAL): not a cost per claim.
    await store.claimDue('empty', 100, 1000, 40);
    const before = await commandStats(url);
    const claimed = await store.claimDue('claims', 100, 1000, 40);
    const used = commandsBetween(before, await commandStats(url)).filter(([name]) => name !== 'info');
    expect(claimed).toEqual(Array.from({ length: 40 }, (_, i) => `id${i}`));
    expect(used.reduce((sum, [, calls]) => sum + calls, 0)).toBeLessThanOrEqual(3);
    const leased = (await store.scheduled('claims', { limit: 50 })).filter((e) => e.dueAt === 1100).map((e) => e.id);
    expect(leased.sort()).toEqual(claimed.sort());
    expect(await store.claimDue('claims', 100, 1000, 40)).toEqual(Array.from({ length: 10 }, (_, i) => `id${i + 40}`));
  });

  it('keeps each put of a batch on its own: versions, conflicts, the last schedule move, exact limits', async () => {
    const [first, second, stale] = await Promise.allSettled([
      store.put('docs', 'a', { n: 1 }, { ifVersion: 0, schedule: { queue: 'waiting', dueAt: 5 } }),
      store.put(
        'docs',
        'a',
        { n: 2 },
        {
          ifVersion: 1,
          schedule: [
            { queue: 'waiting', dueAt: null },
            { queue: 'done', dueAt: 7 },
          ],
        },
      ),
      store.put('docs', 'a', { n: 3 }, { ifVersion: 0 }),
    ]);
    expect(first).toMatchObject({ status: 'fulfilled', value: { version: 1 } });
    expect(second).toMatchObject({ status: 'fulfilled', value: { version: 2 } });
    expect(stale).toMatchObject({ status: 'rejected', reason: expect.any(VersionConflictError) as unknown });
    expect(await store.get('docs', 'a')).toEqual({ id: 'a', version: 2, value: { n: 2 } });
    expect(await store.scheduled('waiting', { limit: 10 })).toEqual([]);
    expect(await store.scheduled('done', { limit: 10 })).toEqual([{ id: 'a', dueAt: 7 }]);

    const results = await Promise.allSettled(
      Array.from({ length: 5 }, (_, i) =>
        store.put(
          'capped',
          `c${i}`,
          { i },
          { count: [{ counter: 'places', delta: 1, max: 3 }], schedule: { queue: 'capped', dueAt: i } },
        ),
      ),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
    expect(results.filter((r) => r.status === 'rejected' && r.reason instanceof CounterLimitError)).toHaveLength(2);
    expect(await store.counters(['places'])).toEqual([3]);
    expect((await store.scheduleStats('capped')).count).toBe(3);
    expect((await store.list('capped')).length).toBe(3);
  });
});
