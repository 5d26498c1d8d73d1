import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { messageInput } from '../../src/mail/compose.js';
import { MESSAGES, type MessageDoc } from '../../src/mail/queue.js';
import { createMetrics } from '../../src/metrics.js';
import { healthRouter } from '../../src/web/health.js';
import { createRedisStore } from '../../src/store/redis-store.js';
import { StoreUnavailableError } from '../../src/store/store.js';
import { startMailHarness, type MailHarness, type MailHarnessOptions } from '../fakes/mail-services.js';
import { uniquePrefix } from '../fakes/redis.js';
import { redisClusterTools, startRedisCluster } from '../fakes/redis-cluster.js';
import { startTestSmtp, type TestSmtp } from '../fakes/smtp-server.js';

// The queue on a three-master Redis Cluster (AOF on, appendfsync everysec as in docker-compose.yml) while the
// master holding mailgate's data is killed with SIGKILL mid-drain and started again: nothing is lost and every
// message reaches the SMTP server within 30 s of the restart (queue-chaos.test.ts does the same on one Redis).

const AFTER_FAULT_MS = 30_000;
const SINK_DELAY_MS = 40;
const DOWN_MS = 3000;

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
});

const messageIdsOf = (sink: TestSmtp) =>
  new Set(sink.messages.map((m) => m.headers.find((h) => h.startsWith('Message-ID:'))));

async function readiness(h: MailHarness): Promise<() => Promise<number>> {
  const app = express().use(healthRouter({ store: h.store, metrics: createMetrics() }));
  const server: http.Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/readyz`;
  return async () => (await fetch(url)).status;
}

describe.skipIf(!redisClusterTools())('queue chaos on a Redis Cluster (two instances)', () => {
  it(
    'SIGKILL of the data master mid-drain, restarted 3 s later: 0 lost, all delivered within 30 s',
    { timeout: 120_000 },
    async () => {
      const N = 300;
      const cluster = await startRedisCluster({ appendfsync: 'everysec' });
      cleanups.push(() => cluster.stop());
      const sink = await startTestSmtp({ starttls: false, dataDelayMs: SINK_DELAY_MS });
      cleanups.push(() => sink.close());
      const prefix = uniquePrefix('cchaos');
      const options: MailHarnessOptions = {
        redis: { url: cluster.url, prefix, mode: 'cluster' },
        encryptionKey: randomBytes(32).toString('base64'),
      };

      const seeder = await startMailHarness({ ...options, workers: false });
      const serverId = await seeder.addServer({ host: '127.0.0.1', port: sink.port });
      for (let i = 0; i < N; i += 50) {
        await Promise.all(
          Array.from({ length: Math.min(50, N - i) }, (_, j) =>
            seeder.mail.queue.enqueue({
              ...messageInput.parse({ to: `r${i + j}@example.net`, subject: `m${i + j}`, text: 'x' }),
              serverId,
            }),
          ),
        );
      }
      await seeder.close();

      const instances: MailHarness[] = [];
      for (let i = 0; i < 2; i++) {
        const h = await startMailHarness({
          ...options,
          queue: { pollMs: 50, retryBaseMs: 100, maxAttempts: 20, perServerConcurrency: 8 },
        });
        cleanups.push(() => h.close());
        instances.push(h);
      }
      const [a] = instances;
      const ready = await readiness(a!);
      expect(await ready()).toBe(200);

      const victim = await cluster.masterOf(`{${prefix}}counters`);
      await sink.waitFor(N / 4, 30_000);
      await cluster.kill(victim);
      const killedAt = Date.now();
      expect(sink.messages.length, 'the fault came after the drain had ended').toBeLessThan(N);
      expect(await ready(), '/readyz while the data master is down').toBe(503);
      await new Promise((r) => setTimeout(r, Math.max(0, DOWN_MS - (Date.now() - killedAt))));
      await cluster.restart(victim);
      const restartedAt = Date.now();

      const deadline = restartedAt + AFTER_FAULT_MS;
      while (messageIdsOf(sink).size < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      const after = Date.now() - restartedAt;
      expect(messageIdsOf(sink).size, `distinct messages received within ${AFTER_FAULT_MS} ms of the restart`).toBe(N);
      await expect.poll(ready, { timeout: 10_000, interval: 100 }).toBe(200);
      await expect
        .poll(
          async () =>
            (await a!.store.list<MessageDoc>(MESSAGES))
              .filter((d) => d.value.status !== 'sent')
              .map((d) => `${d.id} ${d.value.status}`),
          { timeout: 15_000, interval: 200 },
        )
        .toEqual([]);
      // Every queued message survived the kill (AOF) and is there, sent.
      expect(await a!.store.list(MESSAGES)).toHaveLength(N);
      const duplicates = sink.messages.length - N;
      console.log(
        `cluster master SIGKILL ${DOWN_MS} ms: last message ${after} ms after the restart; ${duplicates} duplicates`,
      );
      expect(duplicates, 'messages sent twice').toBe(0);
    },
  );

  it('a master down: its commands fail with StoreUnavailableError within 3 s, and work again once it is back', async () => {
    const cluster = await startRedisCluster();
    cleanups.push(() => cluster.stop());
    const prefix = uniquePrefix('cdown');
    const store = await createRedisStore({ url: cluster.url, prefix, mode: 'cluster' });
    cleanups.push(() => store.close());
    await store.put('things', 'a', { n: 1 });
    const victim = await cluster.masterOf(`{${prefix}}counters`);
    await cluster.kill(victim);

    for (const op of [() => store.get('things', 'a'), () => store.put('things', 'b', { n: 2 }), () => store.ping()]) {
      const started = Date.now();
      await expect(op()).rejects.toBeInstanceOf(StoreUnavailableError);
      expect(Date.now() - started, 'time to fail').toBeLessThan(3000);
    }
    await cluster.restart(victim);
    await expect.poll(() => store.get('things', 'a'), { timeout: 10_000, interval: 100 }).toMatchObject({ version: 1 });
    await store.ping();
    expect((await store.put('things', 'b', { n: 2 })).version).toBe(1);
  });
});
