import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createFileStore } from '../../src/store/file-store.js';
import { createRedisStore } from '../../src/store/redis-store.js';
import type { Store } from '../../src/store/store.js';
import { redisUrlForTests, uniquePrefix } from '../fakes/redis.js';

// A list page (`after` + `limit`, with or without a prefix) is the same slice of the id order on both stores.

const redisUrl = redisUrlForTests();
const cleanup: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

const backends: Array<{ name: string; open: () => Promise<Store> }> = [
  {
    name: 'embedded',
    open: async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-pages-'));
      const store = await createFileStore(dir);
      cleanup.push(async () => {
        await store.close();
        await rm(dir, { recursive: true, force: true });
      });
      return store;
    },
  },
  ...(redisUrl
    ? [
        {
          name: 'redis',
          open: async () => {
            const store = await createRedisStore({ url: redisUrl, prefix: uniquePrefix('pages') });
            cleanup.push(() => store.close());
            return store;
          },
        },
      ]
    : []),
];

describe.each(backends)('list pages ($name)', ({ open }) => {
  it('walks a collection page by page, with and without a prefix, and never returns an id twice', async () => {
    const store = await open();
    const ids = Array.from({ length: 23 }, (_, i) => `a${String(i).padStart(2, '0')}`);
    for (const id of [...ids, 'b1', 'b2']) await store.put('things', id, { id });
    const walk = async (prefix?: string) => {
      const seen: string[] = [];
      let after: string | undefined;
      for (;;) {
        const page = await store.list('things', {
          limit: 5,
          ...(after !== undefined ? { after } : {}),
          ...(prefix ? { prefix } : {}),
        });
        expect(page.length).toBeLessThanOrEqual(5);
        seen.push(...page.map((d) => d.id));
        if (page.length < 5) return seen;
        after = page.at(-1)!.id;
      }
    };
    expect(await walk()).toEqual([...ids, 'b1', 'b2']);
    expect(await walk('a')).toEqual(ids);
    expect((await store.list('things', { after: 'a21' })).map((d) => d.id)).toEqual(['a22', 'b1', 'b2']);
    expect((await store.list('things', { prefix: 'b', after: 'a05', limit: 1 })).map((d) => d.id)).toEqual(['b1']);
    expect(await store.list('things', { prefix: 'a', after: 'a22' })).toEqual([]);
  });
});

describe.each(backends)('list pages, highest ids first ($name)', ({ open }) => {
  it('walks a collection backwards with `before`, with and without a prefix, as the mirror of the forward walk', async () => {
    const store = await open();
    const ids = Array.from({ length: 23 }, (_, i) => `a${String(i).padStart(2, '0')}`);
    for (const id of ['0z', ...ids, 'b1', 'b2']) await store.put('things', id, { id });
    const walk = async (prefix?: string) => {
      const seen: string[] = [];
      let before: string | undefined;
      for (;;) {
        const page = await store.list('things', {
          limit: 5,
          descending: true,
          ...(before !== undefined ? { before } : {}),
          ...(prefix ? { prefix } : {}),
        });
        expect(page.length).toBeLessThanOrEqual(5);
        seen.push(...page.map((d) => d.id));
        if (page.length < 5) return seen;
        before = page.at(-1)!.id;
      }
    };
    expect(await walk()).toEqual(['0z', ...ids, 'b1', 'b2'].reverse());
    expect(await walk('a')).toEqual([...ids].reverse());
    expect((await store.list('things', { before: 'a02', descending: true })).map((d) => d.id)).toEqual([
      'a01',
      'a00',
      '0z',
    ]);
    expect((await store.list('things', { before: 'a02' })).map((d) => d.id)).toEqual(['0z', 'a00', 'a01']);
    expect(
      (await store.list('things', { after: 'a19', before: 'b2', descending: true, limit: 3 })).map((d) => d.id),
    ).toEqual(['b1', 'a22', 'a21']);
    expect((await store.list('things', { prefix: 'b', before: 'zz', descending: true })).map((d) => d.id)).toEqual([
      'b2',
      'b1',
    ]);
    expect(await store.list('things', { prefix: 'b', before: 'a05', descending: true })).toEqual([]);
  });
});
