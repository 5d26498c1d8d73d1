/**
 * Store latency: `npx tsx bench/store.ts` (file store; add REDIS_URL=redis://… for the Redis store too).
 * Prints per-operation times for a small mail-queue-sized document, sequential and 100 at a time.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createFileStore } from '../src/store/file-store.js';
import { createRedisStore } from '../src/store/redis-store.js';
import type { Store } from '../src/store/store.js';

const N = 3000;
const message = {
  to: ['someone@example.com'],
  subject: 'Your report is ready',
  text: 'x'.repeat(300),
  status: 'queued',
  attempts: 0,
};

async function measure(label: string, store: Store): Promise<void> {
  const time = async (fn: () => Promise<unknown>) => {
    const started = performance.now();
    await fn();
    return ((performance.now() - started) / N).toFixed(3);
  };
  const put = await time(async () => {
    for (let i = 0; i < N; i++) await store.put('messages', `m${i}`, message);
  });
  const putConcurrent = await time(async () => {
    for (let i = 0; i < N; i += 100)
      await Promise.all(
        Array.from({ length: 100 }, (_, j) => store.put('messages', `m${i + j}`, { ...message, status: 'sending' })),
      );
  });
  const cas = await time(async () => {
    for (let i = 0; i < N; i++) {
      const doc = await store.get('messages', `m${i}`);
      await store.put('messages', `m${i}`, { ...message, status: 'sent' }, { ifVersion: doc!.version });
    }
  });
  const get = await time(async () => {
    for (let i = 0; i < N; i++) await store.get('messages', `m${i}`);
  });
  const schedule = await time(async () => {
    for (let i = 0; i < N; i++) await store.schedule('bench', `m${i}`, Date.now());
  });
  const claim = await time(async () => {
    for (let i = 0; i < N; i += 10) await store.claimDue('bench', Date.now(), 60_000, 10);
  });
  const append = await time(async () => {
    for (let i = 0; i < N; i++) await store.append('bench-log', { i, action: 'bench' });
  });
  console.log(
    `${label} (ms per operation, ${N} ops): put ${put} | put, 100 concurrent ${putConcurrent} | get+CAS put ${cas} | get ${get} | schedule ${schedule} | claimDue(10)/10 ${claim} | append ${append}`,
  );
}

const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-bench-store-'));
try {
  for (const fsync of [false, true]) {
    const store = await createFileStore(path.join(dir, String(fsync)), { fsync });
    await measure(`file store${fsync ? ' with fsync' : ''}`, store);
    await store.close();
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
if (process.env.REDIS_URL) {
  const prefix = `mailgate-bench:${Date.now()}:`;
  const store = await createRedisStore({ url: process.env.REDIS_URL, prefix });
  await measure('redis store', store);
  for (const doc of await store.list('messages')) await store.delete('messages', doc.id);
  await store.close();
  console.log(`(Redis keys under ${prefix} for logs and schedules are left; they are small)`);
}
