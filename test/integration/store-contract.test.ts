import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import session from 'express-session';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFileStore } from '../../src/store/file-store.js';
import { createRedisStore } from '../../src/store/redis-store.js';
import type { SessionsAndLimits, StoreWithSessions } from '../../src/store/sessions.js';
import {
  StoreUnavailableError,
  VersionConflictError,
  type Documents,
  type Locks,
  type Logs,
  type PubSub,
  type Schedules,
  type StoreLifecycle,
} from '../../src/store/store.js';
import { redisUrlForTests, uniquePrefix } from '../fakes/redis.js';
import { redisClusterTools, startRedisCluster, type TestRedisCluster } from '../fakes/redis-cluster.js';

/**
 * The one contract both stores must meet, capability by capability: each section sees the store only as the
 * capability it checks. `open()` gives a store on the shared backing (same folder or same Redis prefix);
 * `reopen` for the file store closes the first instance, since it is single-process.
 */
interface Harness {
  open(): Promise<StoreWithSessions>;
  /** True when two live instances can share the data (Redis); false for the single-process file store. */
  shared: boolean;
  cleanup(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function contract(name: string, makeHarness: () => Promise<Harness>): void {
  describe(name, () => {
    let harness: Harness;
    let store: StoreWithSessions;

    beforeAll(async () => {
      harness = await makeHarness();
      store = await harness.open();
    });
    afterAll(async () => {
      await store?.close();
      await harness?.cleanup();
    });

    describe('documents', () => {
      const docs = (): Documents => store;

      it('puts, gets and versions a document', async () => {
        expect(await docs().get('things', 'missing')).toBeNull();
        const first = await docs().put('things', 'a', { n: 1, nested: { s: 'x' } });
        expect(first).toEqual({ id: 'a', version: 1, value: { n: 1, nested: { s: 'x' } } });
        const second = await docs().put('things', 'a', { n: 2 });
        expect(second.version).toBe(2);
        expect(await docs().get('things', 'a')).toEqual({ id: 'a', version: 2, value: { n: 2 } });
      });

      it('returns copies: mutating a returned value changes nothing stored', async () => {
        const doc = await docs().put<{ list: number[] }>('things', 'copy', { list: [1] });
        doc.value.list.push(2);
        const read = await docs().get<{ list: number[] }>('things', 'copy');
        read!.value.list.push(3);
        expect((await docs().get('things', 'copy'))!.value).toEqual({ list: [1] });
      });

      it('accepts ids with any characters', async () => {
        const ids = ['a/b', '../etc', 'ü€😀', 'x'.repeat(500), '.hidden', 'CAPS', 'sp ace', 'a%2Fb'];
        for (const id of ids) await docs().put('weird', id, { id });
        for (const id of ids) expect((await docs().get('weird', id))?.value).toEqual({ id });
        expect((await docs().list('weird')).map((d) => d.id)).toEqual([...ids].sort());
        // Ids differing only in case stay two documents (file systems that ignore case included).
        await docs().put('weird', 'msg_aB', { v: 1 });
        await docs().put('weird', 'msg_Ab', { v: 2 });
        expect((await docs().get('weird', 'msg_aB'))?.value).toEqual({ v: 1 });
        expect((await docs().get('weird', 'msg_Ab'))?.value).toEqual({ v: 2 });
      });

      it('CAS: ifVersion 0 refuses an existing document, a stale version is refused, nothing written', async () => {
        await docs().put('cas', 'one', { v: 'first' }, { ifVersion: 0 });
        await expect(docs().put('cas', 'one', { v: 'dup' }, { ifVersion: 0 })).rejects.toBeInstanceOf(
          VersionConflictError,
        );
        await docs().put('cas', 'one', { v: 'second' }, { ifVersion: 1 });
        const stale = docs().put('cas', 'one', { v: 'stale' }, { ifVersion: 1 });
        await expect(stale).rejects.toMatchObject({
          name: 'VersionConflictError',
          expected: 1,
          actual: 2,
          collection: 'cas',
          id: 'one',
        });
        expect(await docs().get('cas', 'one')).toEqual({ id: 'one', version: 2, value: { v: 'second' } });
        await expect(docs().put('cas', 'nothing', {}, { ifVersion: 3 })).rejects.toBeInstanceOf(VersionConflictError);
        expect(await docs().get('cas', 'nothing')).toBeNull();
      });

      it('CAS: of 50 concurrent writers on the same version exactly one wins', async () => {
        const base = await docs().put('cas', 'race', { winner: null });
        const results = await Promise.allSettled(
          Array.from({ length: 50 }, (_, i) => docs().put('cas', 'race', { winner: i }, { ifVersion: base.version })),
        );
        const won = results.filter((r) => r.status === 'fulfilled');
        expect(won).toHaveLength(1);
        for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(VersionConflictError);
        const final = await docs().get<{ winner: number }>('cas', 'race');
        expect(final!.version).toBe(base.version + 1);
        expect(final!.value).toEqual((won[0] as PromiseFulfilledResult<{ value: unknown }>).value.value);
      });

      it('CAS: 20 concurrent read-modify-write loops lose no increment', async () => {
        await docs().put('cas', 'counter', { n: 0 });
        await Promise.all(
          Array.from({ length: 20 }, async () => {
            for (;;) {
              const doc = await docs().get<{ n: number }>('cas', 'counter');
              try {
                await docs().put('cas', 'counter', { n: doc!.value.n + 1 }, { ifVersion: doc!.version });
                return;
              } catch (err) {
                if (!(err instanceof VersionConflictError)) throw err;
              }
            }
          }),
        );
        expect((await docs().get<{ n: number }>('cas', 'counter'))!.value.n).toBe(20);
      });

      it('deletes, with CAS', async () => {
        await docs().put('del', 'x', { a: 1 });
        await docs().put('del', 'x', { a: 2 });
        await expect(docs().delete('del', 'x', { ifVersion: 1 })).rejects.toBeInstanceOf(VersionConflictError);
        expect(await docs().get('del', 'x')).not.toBeNull();
        expect(await docs().delete('del', 'x', { ifVersion: 2 })).toBe(true);
        expect(await docs().get('del', 'x')).toBeNull();
        expect(await docs().delete('del', 'x')).toBe(false);
        await expect(docs().delete('del', 'x', { ifVersion: 1 })).rejects.toBeInstanceOf(VersionConflictError);
        // A recreated document starts again at version 1.
        expect((await docs().put('del', 'x', { a: 3 }, { ifVersion: 0 })).version).toBe(1);
      });

      it('lists sorted by id, with a prefix', async () => {
        for (const id of ['m:2', 'm:10', 'n:1', 'm:1', 'l', 'm:']) await docs().put('listed', id, { id });
        expect((await docs().list('listed')).map((d) => d.id)).toEqual(['l', 'm:', 'm:1', 'm:10', 'm:2', 'n:1']);
        const m = await docs().list<{ id: string }>('listed', { prefix: 'm:' });
        expect(m.map((d) => d.id)).toEqual(['m:', 'm:1', 'm:10', 'm:2']);
        expect(m[0]).toEqual({ id: 'm:', version: 1, value: { id: 'm:' } });
        expect(await docs().list('listed', { prefix: 'zz' })).toEqual([]);
        expect(await docs().list('never-written')).toEqual([]);
      });

      it('names the collections that hold documents', async () => {
        await docs().put('col-a', '1', {});
        await docs().put('col-b', '1', {});
        await docs().delete('col-b', '1');
        const names = await docs().collections();
        expect(names).toContain('col-a');
        expect(names).toContain('things');
        expect(names).not.toContain('col-b');
        expect(names).toEqual([...names].sort());
      });

      it('rejects invalid collection names', async () => {
        await expect(docs().put('Bad/Name', 'x', {})).rejects.toThrow(/collection/);
      });
    });

    describe('locks', () => {
      const locks = (): Locks => store;

      it('rejects a TTL that is not positive', async () => {
        await expect(locks().acquireLock('l-bad', 0)).rejects.toThrow(/positive/);
      });

      it('gives a lock to one owner at a time', async () => {
        const first = await locks().acquireLock('l1', 5_000);
        expect(first).not.toBeNull();
        expect(await locks().acquireLock('l1', 5_000)).toBeNull();
        expect(await first!.release()).toBe(true);
        expect(await first!.release()).toBe(false);
        const again = await locks().acquireLock('l1', 5_000);
        expect(again).not.toBeNull();
        expect(again!.owner).not.toBe(first!.owner);
        await again!.release();
      });

      it('of 20 concurrent acquirers exactly one gets the lock', async () => {
        const got = await Promise.all(Array.from({ length: 20 }, () => locks().acquireLock('l-race', 5_000)));
        expect(got.filter(Boolean)).toHaveLength(1);
        await got.find(Boolean)!.release();
      });

      it("expires; a late release by the old owner cannot free the new owner's lock", async () => {
        const old = await locks().acquireLock('l2', 100);
        await sleep(150);
        const taker = await locks().acquireLock('l2', 5_000);
        expect(taker).not.toBeNull();
        expect(await old!.release()).toBe(false);
        expect(await old!.extend(5_000)).toBe(false);
        expect(await locks().acquireLock('l2', 5_000)).toBeNull();
        expect(await taker!.release()).toBe(true);
      });

      it('extends the TTL for its owner', async () => {
        const lock = await locks().acquireLock('l3', 150);
        await sleep(80);
        expect(await lock!.extend(1_000)).toBe(true);
        await sleep(150);
        expect(await locks().acquireLock('l3', 1_000)).toBeNull();
        expect(await lock!.release()).toBe(true);
      });
    });

    describe('logs', () => {
      const logs = (): Logs => store;

      it('appends with sortable ids and pages newest first', async () => {
        const ids: string[] = [];
        for (let i = 0; i < 25; i++) ids.push(await logs().append('audit-test', { i }));
        expect([...ids].sort()).toEqual(ids);
        expect(new Set(ids).size).toBe(25);
        for (const id of ids) expect(id).toMatch(/^\d{13}-\d{6}$/);

        const page1 = await logs().readLog<{ i: number }>('audit-test', { limit: 10 });
        expect(page1.map((e) => e.entry.i)).toEqual([24, 23, 22, 21, 20, 19, 18, 17, 16, 15]);
        const page2 = await logs().readLog<{ i: number }>('audit-test', { limit: 10, before: page1.at(-1)!.id });
        expect(page2.map((e) => e.entry.i)).toEqual([14, 13, 12, 11, 10, 9, 8, 7, 6, 5]);
        const page3 = await logs().readLog<{ i: number }>('audit-test', { limit: 10, before: page2.at(-1)!.id });
        expect(page3.map((e) => e.entry.i)).toEqual([4, 3, 2, 1, 0]);

        const newer = await logs().readLog<{ i: number }>('audit-test', { limit: 100, after: ids[20]! });
        expect(newer.map((e) => e.entry.i)).toEqual([24, 23, 22, 21]);
        const between = await logs().readLog<{ i: number }>('audit-test', {
          limit: 100,
          after: ids[2]!,
          before: ids[6]!,
        });
        expect(between.map((e) => e.entry.i)).toEqual([5, 4, 3]);
        expect(await logs().readLog('audit-test', { limit: 5, after: ids[24]! })).toEqual([]);
        expect(await logs().readLog('no-such-log', { limit: 5 })).toEqual([]);
      });

      it('keeps ids unique under concurrent appends', async () => {
        const ids = await Promise.all(Array.from({ length: 200 }, (_, i) => logs().append('audit-burst', { i })));
        expect(new Set(ids).size).toBe(200);
        const all = await logs().readLog<{ i: number }>('audit-burst', { limit: 1000 });
        expect(all).toHaveLength(200);
        expect(all.map((e) => e.id)).toEqual([...ids].sort().reverse());
      });
    });

    describe('schedules', () => {
      const schedules = (): Schedules & Documents => store;

      it('rejects a due time that is not finite', async () => {
        await expect(schedules().schedule('q-bad', 'x', Number.NaN)).rejects.toThrow(/finite/);
      });

      it('claims due ids once, respects limit and time, and stats', async () => {
        const now = Date.now();
        await schedules().schedule('q1', 'late', now + 60_000);
        await schedules().schedule('q1', 'b', now - 1_000);
        await schedules().schedule('q1', 'a', now - 2_000);
        await schedules().schedule('q1', 'c', now - 500);
        expect(await schedules().scheduleStats('q1')).toEqual({ count: 4, earliestDueAt: now - 2_000 });
        expect(await schedules().claimDue('q1', now, 10_000, 2)).toEqual(['a', 'b']);
        expect(await schedules().claimDue('q1', now, 10_000, 10)).toEqual(['c']);
        expect(await schedules().claimDue('q1', now, 10_000, 10)).toEqual([]);
        expect(await schedules().scheduleStats('q1')).toEqual({ count: 4, earliestDueAt: now + 10_000 });
        expect(await schedules().claimDue('q1', now + 10_000, 10_000, 10)).toEqual(['a', 'b', 'c']);
      });

      it('claims due ids together with their documents, null for an id without one', async () => {
        const now = Date.now();
        await store.put('claim-docs', 'd1', { n: 1 }, { schedule: { queue: 'q-docs', dueAt: now - 20 } });
        await store.schedule('q-docs', 'gone', now - 10);
        await store.put('claim-docs', 'later', { n: 3 }, { schedule: { queue: 'q-docs', dueAt: now + 60_000 } });
        expect(await store.claimDueDocs('q-docs', 'claim-docs', now, 10_000, 10)).toEqual([
          { id: 'd1', doc: { id: 'd1', version: 1, value: { n: 1 } } },
          { id: 'gone', doc: null },
        ]);
        expect(await store.claimDueDocs('q-docs', 'claim-docs', now, 10_000, 10)).toEqual([]);
        expect(await store.scheduleStats('q-docs')).toEqual({ count: 3, earliestDueAt: now + 10_000 });
      });

      it('moves an id when rescheduled and forgets it when unscheduled', async () => {
        const now = Date.now();
        await schedules().schedule('q2', 'x', now + 100_000);
        await schedules().schedule('q2', 'x', now - 1);
        await schedules().schedule('q2', 'y', now - 1);
        await schedules().unschedule('q2', 'y');
        await schedules().unschedule('q2', 'never');
        expect(await schedules().claimDue('q2', now, 1_000, 10)).toEqual(['x']);
        await schedules().unschedule('q2', 'x');
        expect(await schedules().scheduleStats('q2')).toEqual({ count: 0, earliestDueAt: null });
      });

      it('onlyIfAbsent adds an id but never moves one already scheduled (a claim keeps its lease)', async () => {
        const now = Date.now();
        await schedules().schedule('q-nx', 'held', now - 1);
        expect(await schedules().claimDue('q-nx', now, 60_000, 10)).toEqual(['held']);
        await schedules().schedule('q-nx', 'held', now - 1, { onlyIfAbsent: true });
        await schedules().schedule('q-nx', 'new', now - 1, { onlyIfAbsent: true });
        expect(await schedules().claimDue('q-nx', now, 60_000, 10)).toEqual(['new']);
        expect(await schedules().scheduled('q-nx', { limit: 10 })).toEqual([
          { id: 'held', dueAt: now + 60_000 },
          { id: 'new', dueAt: now + 60_000 },
        ]);
      });

      it('moves an id in a schedule together with a document write, and only when the write happens', async () => {
        const now = Date.now();
        const created = await schedules().put(
          'sched-docs',
          'm1',
          { n: 1 },
          { ifVersion: 0, schedule: { queue: 'q4', dueAt: now - 10 } },
        );
        expect(await schedules().scheduleStats('q4')).toEqual({ count: 1, earliestDueAt: now - 10 });
        // A failed compare-and-set changes neither the document nor the schedule.
        await expect(
          schedules().put(
            'sched-docs',
            'm1',
            { n: 2 },
            { ifVersion: 0, schedule: { queue: 'q4', dueAt: now + 5_000 } },
          ),
        ).rejects.toBeInstanceOf(VersionConflictError);
        expect(await schedules().scheduleStats('q4')).toEqual({ count: 1, earliestDueAt: now - 10 });
        expect((await schedules().get('sched-docs', 'm1'))?.value).toEqual({ n: 1 });
        // Moved, then removed with the write that finishes it.
        const moved = await schedules().put(
          'sched-docs',
          'm1',
          { n: 2 },
          { ifVersion: created.version, schedule: { queue: 'q4', dueAt: now + 5_000 } },
        );
        expect(await schedules().scheduleStats('q4')).toEqual({ count: 1, earliestDueAt: now + 5_000 });
        await schedules().put(
          'sched-docs',
          'm1',
          { n: 3 },
          { ifVersion: moved.version, schedule: { queue: 'q4', dueAt: null } },
        );
        expect(await schedules().scheduleStats('q4')).toEqual({ count: 0, earliestDueAt: null });
        // A delete takes its schedule entry with it; a refused delete leaves both.
        await schedules().put('sched-docs', 'm2', { n: 1 }, { schedule: { queue: 'q4', dueAt: now } });
        await expect(
          schedules().delete('sched-docs', 'm2', { ifVersion: 7, schedule: { queue: 'q4', dueAt: null } }),
        ).rejects.toBeInstanceOf(VersionConflictError);
        expect(await schedules().claimDue('q4', now, 1_000, 10)).toEqual(['m2']);
        expect(await schedules().delete('sched-docs', 'm2', { schedule: { queue: 'q4', dueAt: null } })).toBe(true);
        expect(await schedules().scheduleStats('q4')).toEqual({ count: 0, earliestDueAt: null });
        expect(await schedules().get('sched-docs', 'm2')).toBeNull();
      });

      it('moves an id in several schedules with one write, all or none', async () => {
        const now = Date.now();
        const both = [
          { queue: 'multi-a', dueAt: now - 5 },
          { queue: 'multi-b', dueAt: now + 1_000 },
        ];
        const created = await schedules().put('multi-docs', 'x', { n: 1 }, { ifVersion: 0, schedule: both });
        expect(await schedules().scheduled('multi-a', { limit: 10 })).toEqual([{ id: 'x', dueAt: now - 5 }]);
        expect(await schedules().scheduled('multi-b', { limit: 10 })).toEqual([{ id: 'x', dueAt: now + 1_000 }]);

        // From a to c, out of b: a refused compare-and-set moves nothing in any of them.
        const moves = [
          { queue: 'multi-a', dueAt: null },
          { queue: 'multi-b', dueAt: null },
          { queue: 'multi-c', dueAt: now + 2_000 },
        ];
        await expect(
          schedules().put('multi-docs', 'x', { n: 2 }, { ifVersion: created.version + 1, schedule: moves }),
        ).rejects.toBeInstanceOf(VersionConflictError);
        await expect(
          schedules().delete('multi-docs', 'x', { ifVersion: created.version + 1, schedule: moves }),
        ).rejects.toBeInstanceOf(VersionConflictError);
        expect(await schedules().scheduleStats('multi-a')).toEqual({ count: 1, earliestDueAt: now - 5 });
        expect(await schedules().scheduleStats('multi-b')).toEqual({ count: 1, earliestDueAt: now + 1_000 });
        expect(await schedules().scheduleStats('multi-c')).toEqual({ count: 0, earliestDueAt: null });
        expect((await schedules().get('multi-docs', 'x'))?.value).toEqual({ n: 1 });

        const moved = await schedules().put(
          'multi-docs',
          'x',
          { n: 2 },
          { ifVersion: created.version, schedule: moves },
        );
        expect(await schedules().scheduleStats('multi-a')).toEqual({ count: 0, earliestDueAt: null });
        expect(await schedules().scheduleStats('multi-b')).toEqual({ count: 0, earliestDueAt: null });
        expect(await schedules().scheduled('multi-c', { limit: 10 })).toEqual([{ id: 'x', dueAt: now + 2_000 }]);

        // A delete clears every schedule it names, including ones the id was not in.
        expect(
          await schedules().delete('multi-docs', 'x', {
            ifVersion: moved.version,
            schedule: [
              { queue: 'multi-a', dueAt: null },
              { queue: 'multi-c', dueAt: null },
            ],
          }),
        ).toBe(true);
        expect(await schedules().scheduleStats('multi-c')).toEqual({ count: 0, earliestDueAt: null });
        // An empty list of moves is a plain write.
        await schedules().put('multi-docs', 'y', { n: 1 }, { schedule: [] });
        expect(await schedules().scheduleStats('multi-a')).toEqual({ count: 0, earliestDueAt: null });
      });

      it('lists a schedule in due-time order, earliest or latest first, up to a limit', async () => {
        expect(await schedules().scheduled('listed-none', { limit: 5 })).toEqual([]);
        await schedules().schedule('listed', 'c', 300);
        await schedules().schedule('listed', 'a', 100);
        await schedules().schedule('listed', 'd', 400);
        await schedules().schedule('listed', 'b', 200);
        await schedules().schedule('listed', 'b2', 200);
        await schedules().schedule('listed', 'a', 500);
        expect(await schedules().scheduled('listed', { limit: 10 })).toEqual([
          { id: 'b', dueAt: 200 },
          { id: 'b2', dueAt: 200 },
          { id: 'c', dueAt: 300 },
          { id: 'd', dueAt: 400 },
          { id: 'a', dueAt: 500 },
        ]);
        expect(await schedules().scheduled('listed', { limit: 2 })).toEqual([
          { id: 'b', dueAt: 200 },
          { id: 'b2', dueAt: 200 },
        ]);
        expect(await schedules().scheduled('listed', { limit: 3, newestFirst: true })).toEqual([
          { id: 'a', dueAt: 500 },
          { id: 'd', dueAt: 400 },
          { id: 'c', dueAt: 300 },
        ]);
        expect(await schedules().scheduled('listed', { limit: 10, newestFirst: true })).toHaveLength(5);
        expect(await schedules().scheduled('listed', { limit: 0 })).toEqual([]);
        await schedules().unschedule('listed', 'd');
        expect((await schedules().scheduled('listed', { limit: 10 })).map((e) => e.id)).toEqual(['b', 'b2', 'c', 'a']);
      });

      it('never hands an id to two of 20 concurrent claimers; a lapsed lease makes it due again', async () => {
        const now = Date.now();
        const ids = Array.from({ length: 100 }, (_, i) => `m${String(i).padStart(3, '0')}`);
        await Promise.all(ids.map((id, i) => schedules().schedule('q3', id, now - 1000 + i)));
        const claims = await Promise.all(Array.from({ length: 20 }, () => schedules().claimDue('q3', now, 200, 7)));
        const flat = claims.flat();
        expect(flat.length).toBe(100);
        expect(new Set(flat).size).toBe(100);
        // Time is the caller's `now`: the lease lasts until now + 200, not a millisecond less.
        expect(await schedules().claimDue('q3', now + 199, 200, 100)).toEqual([]);
        const again = await schedules().claimDue('q3', now + 200, 10_000, 1000);
        expect(again.sort()).toEqual(ids);
      });
    });

    describe('pub/sub', () => {
      const pubsub = (): PubSub => store;

      it('delivers to subscribers until they unsubscribe', async () => {
        const got: string[] = [];
        const unsubscribe = await pubsub().subscribe('ch1', (m) => got.push(m));
        await pubsub().publish('ch1', 'hello');
        await pubsub().publish('other', 'not for us');
        await expect.poll(() => got).toEqual(['hello']);
        // A throwing handler neither crashes the process nor keeps others from their message.
        const unsubscribeThrower = await pubsub().subscribe('ch1', () => {
          throw new Error('handler bug');
        });
        await pubsub().publish('ch1', 'second');
        await expect.poll(() => got).toEqual(['hello', 'second']);
        await unsubscribeThrower();
        await unsubscribe();
        await pubsub().publish('ch1', 'after');
        await sleep(100);
        expect(got).toEqual(['hello', 'second']);
      });
    });

    describe('sessions and rate limits', () => {
      const limits = (): SessionsAndLimits => store;

      it('stores, reads and destroys a session', async () => {
        const sessions = limits().createSessionStore(session);
        const data = {
          cookie: { originalMaxAge: 60_000, expires: new Date(Date.now() + 60_000) },
        } as unknown as session.SessionData;
        await new Promise<void>((resolve, reject) =>
          sessions.set('sid-1', { ...data, user: 'u1' } as session.SessionData, (e) =>
            e ? reject(e as Error) : resolve(),
          ),
        );
        const read = await new Promise<unknown>((resolve, reject) =>
          sessions.get('sid-1', (e, s) => (e ? reject(e as Error) : resolve(s))),
        );
        expect(read).toMatchObject({ user: 'u1' });
        await new Promise<void>((resolve, reject) =>
          sessions.destroy('sid-1', (e) => (e ? reject(e as Error) : resolve())),
        );
        const gone = await new Promise<unknown>((resolve, reject) =>
          sessions.get('sid-1', (e, s) => (e ? reject(e as Error) : resolve(s))),
        );
        expect(gone ?? null).toBeNull();
      });

      it('limits by key', async () => {
        const limiter = limits().createRateLimiter({ keyPrefix: `login-${Math.random()}`, points: 3, durationSec: 60 });
        for (let i = 0; i < 3; i++) await limiter.consume('ip-1');
        await expect(limiter.consume('ip-1')).rejects.toMatchObject({ remainingPoints: 0 });
        await expect(limiter.consume('ip-2')).resolves.toMatchObject({ remainingPoints: 2 });
      });
    });

    describe('lifecycle and traits', () => {
      const lifecycle = (): StoreLifecycle & Documents => store;

      it('pings', async () => {
        await expect(lifecycle().ping()).resolves.toBeUndefined();
      });

      it('keeps every current document and version through compact()', async () => {
        await lifecycle().put('compacted', 'a', { n: 1 });
        const a2 = await lifecycle().put('compacted', 'a', { n: 2 });
        await lifecycle().put('compacted', 'b', { n: 1 });
        await lifecycle().delete('compacted', 'b');
        await lifecycle().compact();
        expect(await lifecycle().list('compacted')).toEqual([{ id: 'a', version: a2.version, value: { n: 2 } }]);
        expect((await lifecycle().put('compacted', 'a', { n: 3 }, { ifVersion: a2.version })).version).toBe(
          a2.version + 1,
        );
      });

      it('keeps the guarantees it states: an exclusive store refuses a second opener', async () => {
        if (lifecycle().exclusive) {
          await expect(harness.open()).rejects.toBeInstanceOf(StoreUnavailableError);
        } else {
          const second = await harness.open();
          await expect(second.ping()).resolves.toBeUndefined();
          await second.close();
        }
        // Indexes that a crash can lose are rebuilt from the documents at start, which is only safe when no one else is using the lifecycle().
        expect(lifecycle().durableIndexes || lifecycle().exclusive).toBe(true);
      });
    });

    describe('a second instance / reopening', () => {
      it('sees documents, logs, schedules written by the first', async () => {
        await store.put('persist', 'doc', { kept: true });
        await store.put('persist', 'doc', { kept: 'twice' });
        const logId = await store.append('persist-log', { line: 1 });
        const due = Date.now() - 10;
        await store.schedule('persist-q', 'job', due);
        await store.schedule('persist-q', 'gone', due);
        await store.unschedule('persist-q', 'gone');
        await store.put(
          'persist',
          'moved',
          { n: 1 },
          {
            schedule: [
              { queue: 'persist-q2', dueAt: due + 1 },
              { queue: 'persist-q3', dueAt: due + 2 },
            ],
          },
        );
        await store.put(
          'persist',
          'moved',
          { n: 2 },
          {
            schedule: [
              { queue: 'persist-q2', dueAt: null },
              { queue: 'persist-q4', dueAt: due + 3 },
            ],
          },
        );
        await store.put('persist', 'counted', { n: 1 }, { count: [{ counter: 'persist-counter', delta: 2 }] });

        if (!harness.shared) await store.close();
        const second = await harness.open();
        try {
          expect(await second.get('persist', 'doc')).toEqual({ id: 'doc', version: 2, value: { kept: 'twice' } });
          expect(await second.readLog('persist-log', { limit: 10 })).toEqual([{ id: logId, entry: { line: 1 } }]);
          expect(await second.scheduleStats('persist-q')).toEqual({ count: 1, earliestDueAt: due });
          expect(await second.scheduleStats('persist-q2')).toEqual({ count: 0, earliestDueAt: null });
          expect(await second.scheduled('persist-q3', { limit: 5 })).toEqual([{ id: 'moved', dueAt: due + 2 }]);
          expect(await second.scheduled('persist-q4', { limit: 5 })).toEqual([{ id: 'moved', dueAt: due + 3 }]);
          // Counters outlive the process only where the store says its indexes are durable; elsewhere their owners count again.
          expect(await second.counters(['persist-counter'])).toEqual([second.durableIndexes ? 2 : 0]);
          const next = await second.append('persist-log', { line: 2 });
          expect(next > logId).toBe(true);
          await second.put('persist', 'doc', { kept: 'thrice' }, { ifVersion: 2 });

          if (harness.shared) {
            // Both instances are live: pub/sub crosses them, CAS holds across them.
            const got: string[] = [];
            await second.subscribe('cross', (m) => got.push(m));
            await store.publish('cross', 'from-first');
            await expect.poll(() => got).toEqual(['from-first']);
            await expect(store.put('persist', 'doc', { kept: 'stale' }, { ifVersion: 2 })).rejects.toBeInstanceOf(
              VersionConflictError,
            );
            const lock = await store.acquireLock('cross-lock', 5_000);
            expect(await second.acquireLock('cross-lock', 5_000)).toBeNull();
            await lock!.release();
          }
        } finally {
          if (harness.shared) await second.close();
          else store = second;
        }
      });
    });
  });
}

contract('file store', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-store-'));
  return {
    shared: false,
    open: () => createFileStore(dir),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

const redisUrl = redisUrlForTests();
describe.skipIf(!redisUrl)('redis', () => {
  contract('redis store', async () => {
    const prefix = uniquePrefix('contract');
    return {
      shared: true,
      open: () => createRedisStore({ url: redisUrl!, prefix }),
      cleanup: async () => undefined,
    };
  });
});

// The same contract on a local three-master Redis Cluster (MAILGATE_REDIS_MODE=cluster).
describe.skipIf(!redisClusterTools())('redis cluster', () => {
  let cluster: TestRedisCluster | undefined;
  beforeAll(async () => {
    cluster = await startRedisCluster();
  });
  afterAll(() => cluster?.stop());
  contract('redis cluster store', async () => {
    const prefix = uniquePrefix('contract');
    return {
      shared: true,
      open: () => createRedisStore({ url: cluster!.url, prefix, mode: 'cluster' }),
      cleanup: async () => undefined,
    };
  });
});
