import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createRedisStore } from '../../src/store/redis-store.js';
import { StoreUnavailableError } from '../../src/store/store.js';
import { redisUrlForTests, uniquePrefix } from '../fakes/redis.js';

// A private redis-server this test may kill; the shared test Redis must stay up for other suites.
const binary = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((p) => existsSync(p));

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn(binary!, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const deadline = Date.now() + 10_000;
  for (;;) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.end();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (up) return child;
    if (Date.now() > deadline) throw new Error('private redis-server did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(!redisUrlForTests() || !binary)('redis store when Redis is down', () => {
  let redis: ChildProcess | undefined;
  afterEach(() => {
    redis?.kill('SIGKILL');
  });

  it('refuses to open quickly with StoreUnavailableError naming the URL without its password', async () => {
    const port = await freePort();
    const started = Date.now();
    const error = await createRedisStore({ url: `redis://:hunter2secret@127.0.0.1:${port}`, prefix: uniquePrefix() }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect((error as Error).message).toContain(`127.0.0.1:${port}`);
    expect((error as Error).message).not.toContain('hunter2secret');
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('answers ping and commands with StoreUnavailableError within 2 s once Redis dies, and recovers', async () => {
    const port = await freePort();
    redis = await startRedis(port);
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

      redis = await startRedis(port);
      await expect.poll(() => store.ping().then(() => 'up', () => 'down'), { timeout: 10_000, interval: 200 }).toBe('up');
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
    redis = await startRedis(port);
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
});
