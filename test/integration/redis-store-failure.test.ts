import type { ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { Keyring, sealedKeyId } from '../../src/crypto/keyring.js';
import { rotateKeys } from '../../src/crypto/rotation.js';
import { createRedisStore } from '../../src/store/redis-store.js';
import { StoreUnavailableError } from '../../src/store/store.js';
import { freePort } from '../fakes/net.js';
import { redisUrlForTests, uniquePrefix } from '../fakes/redis.js';
import { spawnRedisServer } from '../fakes/redis-server.js';
import { toolForTests } from '../fakes/tools.js';

// A private redis-server this test may kill; the shared test Redis must stay up for other suites.
const binary = toolForTests('redisServer');

describe.skipIf(!redisUrlForTests() || !binary)('redis store when Redis is down', () => {
  let redis: ChildProcess | undefined;
  afterEach(() => {
    redis?.kill('SIGKILL');
  });

  it('refuses to open quickly with StoreUnavailableError naming the URL without its password', async () => {
    const port = await freePort();
    const started = Date.now();
    const error = await createRedisStore({
      url: `redis://:hunter2secret@127.0.0.1:${port}`,
      prefix: uniquePrefix(),
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect((error as Error).message).toContain(`127.0.0.1:${port}`);
    expect((error as Error).message).not.toContain('hunter2secret');
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('answers ping and commands with StoreUnavailableError within 2 s once Redis dies, and recovers', async () => {
    const port = await freePort();
    redis = await spawnRedisServer(binary!, port);
    const store = await createRedisStore({ url: `redis://127.0.0.1:${port}`, prefix: uniquePrefix() });
    try {
      await store.put('things', 'a', { ok: true });
      await store.ping();
      const before: string[] = [];
      await store.subscribe('before-outage', (m) => before.push(m));
      redis.kill('SIGKILL');
      await new Promise((r) => setTimeout(r, 100));

      let started = Date.now();
      await expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
      expect(Date.now() - started).toBeLessThan(2_000);
      started = Date.now();
      await expect(store.get('things', 'a')).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(store.put('things', 'b', {})).rejects.toBeInstanceOf(StoreUnavailableError);
      expect(Date.now() - started).toBeLessThan(4_000);
      await expect(store.subscribe('during-outage', () => undefined)).rejects.toBeInstanceOf(StoreUnavailableError);

      redis = await spawnRedisServer(binary!, port);
      await expect
        .poll(
          () =>
            store.ping().then(
              () => 'up',
              () => 'down',
            ),
          { timeout: 10_000, interval: 200 },
        )
        .toBe('up');
      // Fresh Redis (no persistence): the store works again.
      await store.put('things', 'c', { back: true });
      expect((await store.get('things', 'c'))?.value).toEqual({ back: true });
      // Subscriptions come back: the one made before the outage is renewed, a new one can be made.
      const after: string[] = [];
      await store.subscribe('after-outage', (m) => after.push(m));
      await store.publish('after-outage', 'hello');
      await expect.poll(() => after).toEqual(['hello']);
      await expect
        .poll(
          async () => {
            await store.publish('before-outage', 'again');
            return before.length > 0;
          },
          { timeout: 10_000, interval: 300 },
        )
        .toBe(true);
    } finally {
      await store.close();
    }
  });

  it('ping reports a frozen Redis within 2 s', async () => {
    const port = await freePort();
    redis = await spawnRedisServer(binary!, port);
    const store = await createRedisStore({ url: `redis://127.0.0.1:${port}`, prefix: uniquePrefix() });
    try {
      redis.kill('SIGSTOP');
      const started = Date.now();
      await expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
      expect(Date.now() - started).toBeLessThan(2_000);
    } finally {
      redis.kill('SIGCONT');
      await store.close();
    }
  });

  it('a key rotation cut off by a frozen Redis leaves every document whole; a rerun finishes it', async () => {
    const port = await freePort();
    redis = await spawnRedisServer(binary!, port);
    const store = await createRedisStore({
      url: `redis://127.0.0.1:${port}`,
      prefix: uniquePrefix(),
      commandTimeoutMs: 500,
    });
    const oldKey = { id: 'old', key: randomBytes(32) };
    const newKey = { id: 'new', key: randomBytes(32) };
    const before = new Keyring([oldKey]);
    const during = new Keyring([newKey, oldKey]);
    try {
      for (let i = 0; i < 2000; i += 200) {
        await Promise.all(
          Array.from({ length: 200 }, (_, j) => {
            const id = `g${i + j}`;
            const seal = (field: string) => before.seal(`${field}-${id}`, { collection: 'oauth_grants', id, field });
            return store.put('oauth_grants', id, {
              tokens: { refreshToken: seal('tokens.refreshToken'), accessToken: seal('tokens.accessToken') },
            });
          }),
        );
      }
      let frozen = false;
      const outcome = await rotateKeys(store, during, {
        onProgress: (p) => {
          if (!frozen && p.documentsDone >= 200) {
            frozen = true;
            redis!.kill('SIGSTOP');
          }
        },
      }).catch((e: unknown) => e);
      expect(frozen).toBe(true);
      expect(outcome).toBeInstanceOf(StoreUnavailableError);
      redis.kill('SIGCONT');
      await expect
        .poll(
          () =>
            store.ping().then(
              () => 'up',
              () => 'down',
            ),
          { timeout: 10_000, interval: 100 },
        )
        .toBe('up');

      let rotatedDocs = 0;
      for (const doc of await store.list<{ tokens: { refreshToken: string; accessToken: string } }>('oauth_grants')) {
        const kids = [sealedKeyId(doc.value.tokens.refreshToken), sealedKeyId(doc.value.tokens.accessToken)];
        expect(kids[0]).toBe(kids[1]);
        if (kids[0] === 'new') rotatedDocs++;
        for (const field of ['refreshToken', 'accessToken'] as const) {
          const ctx = { collection: 'oauth_grants', id: doc.id, field: `tokens.${field}` };
          expect(during.open(doc.value.tokens[field], ctx)).toBe(`tokens.${field}-${doc.id}`);
        }
      }
      expect(rotatedDocs).toBeGreaterThanOrEqual(200);
      expect(rotatedDocs).toBeLessThan(2000);
      const rerun = await rotateKeys(store, during);
      expect(rerun.resealed).toBe((2000 - rotatedDocs) * 2);
      expect(rerun.perKeyAfter).toEqual({ new: 4000, old: 0 });
    } finally {
      redis.kill('SIGCONT');
      await store.close();
    }
  });
});
