import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { messageInput } from '../../src/mail/compose.js';
import { MESSAGES, type MessageDoc } from '../../src/mail/queue.js';
import { createLogger } from '../../src/log.js';
import { MAIL_QUEUE } from '../../src/mail/queue/model.js';
import { createParking, PARKED_SERVERS, parkedQueue } from '../../src/mail/queue/parking.js';
import type { Schedules } from '../../src/store/store.js';
import { onPath } from '../fakes/binaries.js';
import { startMailHarness, TEST_ACTOR, type MailHarness, type MailHarnessOptions } from '../fakes/mail-services.js';
import { freePort } from '../fakes/net.js';
import { commandsBetween, commandStats } from '../fakes/redis-commands.js';
import { uniquePrefix } from '../fakes/redis.js';
import { spawnRedisServer } from '../fakes/redis-server.js';
import { startTestSmtp, type TestSmtp, type TestSmtpOptions } from '../fakes/smtp-server.js';
import { startWorkerChild } from '../fakes/worker-child-process.js';

// Fairness without claiming a backlog again and again: a server at its in-flight cap while another server has
// mail waiting has its extra messages parked (src/mail/queue/parking.ts) and put back one per finished delivery;
// a single mailbox is never parked. On a private Redis (its commands counted with INFO commandstats) and on the
// embedded store.

const redisBinary = onPath('redis-server');

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
});

const input = (i: number) => messageInput.parse({ to: `r${i}@example.net`, subject: `m${i}`, text: 'x' });

async function privateRedis(): Promise<{ url: string }> {
  const port = await freePort();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-parking-redis-'));
  const proc = await spawnRedisServer(redisBinary!, port, dir);
  cleanups.push(async () => {
    proc.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });
  return { url: `redis://127.0.0.1:${port}` };
}

async function sink(options: TestSmtpOptions = {}): Promise<TestSmtp> {
  const s = await startTestSmtp({ starttls: false, ...options });
  cleanups.push(() => s.close());
  return s;
}

async function harness(options: MailHarnessOptions): Promise<MailHarness> {
  const h = await startMailHarness({ env: { MAILGATE_FSYNC: 'off' }, ...options });
  cleanups.push(() => h.close());
  return h;
}

async function storeOptions(kind: 'redis' | 'file'): Promise<MailHarnessOptions> {
  const encryptionKey = randomBytes(32).toString('base64');
  if (kind === 'redis') {
    const options = { redis: { url: (await privateRedis()).url, prefix: uniquePrefix('park') }, encryptionKey };
    // The one-time index and counter builds of a first start, out of the way of the counts.
    await (await startMailHarness(options)).close();
    return options;
  }
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-parking-'));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  return { dataDir, encryptionKey };
}

/** Message-IDs received, and how many arrived more than once. */
function received(s: TestSmtp): { distinct: number; duplicates: number } {
  const ids = s.messages.map((m) => m.headers.find((h) => h.startsWith('Message-ID:')));
  return { distinct: new Set(ids).size, duplicates: ids.length - new Set(ids).size };
}

async function allSent(h: MailHarness, n: number): Promise<void> {
  await expect
    .poll(async () => (await h.store.list<MessageDoc>(MESSAGES)).filter((d) => d.value.status === 'sent').length, {
      timeout: 30_000,
      interval: 100,
    })
    .toBe(n);
}

const commandsSince = async (url: string, before: Map<string, number>) => {
  const used = commandsBetween(before, await commandStats(url)).filter(([name]) => name !== 'info');
  console.log(used.map(([n, c]) => `${n} ${c}`).join(', '));
  return used.reduce((sum, [, calls]) => sum + calls, 0);
};

describe.runIf(redisBinary)('parking on Redis', () => {
  it('one mailbox alone: nothing is parked and a message costs about what it costs without the cap', async () => {
    const N = 300;
    const options = await storeOptions('redis');
    const s = await sink();
    const seeder = await harness({ ...options, workers: false });
    const a = await seeder.addServer({ host: '127.0.0.1', port: s.port });
    for (let i = 0; i < N; i++) await seeder.mail.queue.enqueue({ ...input(i), serverId: a });
    const url = options.redis!.url;
    const before = await commandStats(url);
    const h = await harness({ ...options, queue: { concurrency: 8, pollMs: 20, retryBaseMs: 50 } });
    await s.waitFor(N, 30_000);
    await allSent(h, N);
    await h.mail.queue.stop();
    const perMessage = (await commandsSince(url, before)) / N;
    console.log(`one mailbox, ${N} messages at concurrency 8: ${perMessage.toFixed(1)} Redis commands per message`);
    expect(received(s)).toEqual({ distinct: N, duplicates: 0 });
    expect(await h.store.scheduleStats(PARKED_SERVERS)).toEqual({ count: 0, earliestDueAt: null });
    // Pushed back a second at a time, the backlog was claimed again and again: about 34 per message.
    expect(perMessage).toBeLessThan(12);
  }, 60_000);

  it('kill -9 of an instance holding parked messages: the other instance delivers them within 30 s', async () => {
    const N = 200;
    const options = await storeOptions('redis');
    const slowA = await sink({ dataDelayMs: 20 });
    const fastB = await sink();
    const seeder = await harness({ ...options, workers: false });
    const a = await seeder.addServer({ host: '127.0.0.1', port: slowA.port });
    const b = await seeder.addServer({ host: '127.0.0.1', port: fastB.port });
    for (let i = 0; i < N; i++) await seeder.mail.queue.enqueue({ ...input(i), serverId: a });
    // B has mail waiting (its mark is fresh), so A is capped and its backlog parked.
    await seeder.mail.queue.enqueue({ ...input(N), serverId: b });
    const victim = await startChild({
      REDIS_URL: options.redis!.url,
      REDIS_PREFIX: options.redis!.prefix,
      ENCRYPTION_KEY: options.encryptionKey!,
      MAILGATE_LOG_LEVEL: 'silent',
      PER_SERVER: '2',
      // A short lease, so what is timed is the parked messages' recovery, not the killed sends' leases.
      LEASE_MS: '2000',
    });
    await expect
      .poll(async () => (await seeder.store.scheduleStats(parkedQueue(a))).count, { timeout: 20_000, interval: 20 })
      .toBeGreaterThan(N / 2);
    victim.kill('SIGKILL');
    const killedAt = Date.now();
    expect(slowA.messages.length, 'the kill came after the drain had ended').toBeLessThan(N);
    const survivor = await harness({ ...options, queue: { concurrency: 8, pollMs: 20, retryBaseMs: 50 } });
    await slowA.waitFor(N, 30_000);
    console.log(`parked by a killed instance: all delivered ${Date.now() - killedAt} ms after the kill`);
    await allSent(survivor, N + 1);
    // Only the sends in flight at the kill may repeat.
    expect(received(slowA).distinct).toBe(N);
    expect(received(slowA).duplicates).toBeLessThanOrEqual(8);
    // A kill between a park's steps leaves a parked copy that becomes due when the unpark lease (15 s) would have
    // ended; it is then unparked and dropped as stale (or, if the message had already left the global schedule,
    // delivered: the waits above would have caught a loss).
    await expect
      .poll(async () => (await survivor.store.scheduleStats(parkedQueue(a))).count, { timeout: 30_000, interval: 100 })
      .toBe(0);
  }, 90_000);
});

describe.each(redisBinary ? (['redis', 'file'] as const) : (['file'] as const))('parking on %s', (kind) => {
  it('two mailboxes: A is parked about once per message, B passes its backlog, each delivered once', async () => {
    const N = 300;
    const options = await storeOptions(kind);
    let atOnce = 0;
    let mostAtOnce = 0;
    const slowA = await sink({
      beforeDataReply: async () => {
        mostAtOnce = Math.max(mostAtOnce, ++atOnce);
        await new Promise((resolve) => setTimeout(resolve, 10));
        atOnce--;
      },
    });
    const fastB = await sink();
    const seeder = await harness({ ...options, workers: false });
    const a = await seeder.addServer({ host: '127.0.0.1', port: slowA.port });
    const b = await seeder.addServer({ host: '127.0.0.1', port: fastB.port });
    for (let i = 0; i < N; i++) await seeder.mail.queue.enqueue({ ...input(i), serverId: a });
    for (let i = 0; i < 10; i++) await seeder.mail.queue.enqueue({ ...input(N + i), serverId: b });
    const url = options.redis?.url;
    const before = url ? await commandStats(url) : null;
    if (kind === 'file') await seeder.close();
    const h = await harness({ ...options, queue: { concurrency: 8, pollMs: 20, retryBaseMs: 50 } });
    let mostParked = 0;
    const sampling = setInterval(() => {
      void h.store.scheduleStats(parkedQueue(a)).then((s) => (mostParked = Math.max(mostParked, s.count)));
    }, 25);
    cleanups.push(() => clearInterval(sampling));
    await fastB.waitFor(10, 20_000);
    expect(slowA.messages.length, 'B waited behind A').toBeLessThan(N / 2);
    await slowA.waitFor(N, 30_000);
    await allSent(h, N + 10);
    await h.mail.queue.stop();
    clearInterval(sampling);
    const perMessage = url && before ? (await commandsSince(url, before)) / (N + 10) : 0;
    if (url) console.log(`two mailboxes, A parked: ${perMessage.toFixed(1)} Redis commands per message`);
    expect(mostParked, 'A was parked').toBeGreaterThan(N / 2);
    // Once nothing else was due, A's parked messages took every free slot, not only the cap's 2.
    expect(mostAtOnce, 'A back to full width').toBeGreaterThan(2);
    expect(received(slowA)).toEqual({ distinct: N, duplicates: 0 });
    expect(received(fastB)).toEqual({ distinct: 10, duplicates: 0 });
    expect((await h.store.scheduleStats(parkedQueue(a))).count).toBe(0);
    // A park and an unpark are a few commands each (about 20 in all); pushing back cost about 47.
    if (url) expect(perMessage).toBeLessThan(26);
  }, 90_000);

  it('an unpark while a park is under way leaves the message in a schedule, and it is unparked after', async () => {
    const h = await harness({ ...(await storeOptions(kind)), workers: false });
    const id = 'msg_park_race';
    await h.store.schedule(MAIL_QUEUE, id, Date.now());
    // The park stops before taking the id out of the global schedule; an unpark runs in that gap.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let gapReached!: () => void;
    const inGap = new Promise<void>((resolve) => (gapReached = resolve));
    const store = h.store;
    const gated: Schedules = {
      schedule: (queue, entry, dueAt, options) => store.schedule(queue, entry, dueAt, options),
      claimDue: (queue, at, leaseMs, limit) => store.claimDue(queue, at, leaseMs, limit),
      scheduled: (queue, options) => store.scheduled(queue, options),
      scheduleStats: (queue) => store.scheduleStats(queue),
      async unschedule(queue, entry) {
        if (queue === MAIL_QUEUE) {
          gapReached();
          await gate;
        }
        return store.unschedule(queue, entry);
      },
    };
    const log = createLogger({ level: 'silent' });
    const parking = createParking({ store: gated, now: Date.now, log });
    const other = createParking({ store: h.store, now: Date.now, log });
    const parked = parking.park(id, 'srv_a');
    await inGap;
    await other.unpark('srv_a', 1);
    release();
    await parked;
    const inGlobal = (await h.store.scheduled(MAIL_QUEUE, { limit: 10 })).some((e) => e.id === id);
    const inParked = (await h.store.scheduled(parkedQueue('srv_a'), { limit: 10 })).some((e) => e.id === id);
    expect(inGlobal || inParked, 'the message is in no schedule: lost').toBe(true);
    expect(await other.unpark('srv_a', 1)).toBe(1);
    expect((await h.store.scheduled(MAIL_QUEUE, { limit: 10 })).map((e) => e.id)).toEqual([id]);
  });

  it('parked messages are waiting on the queue page and in its counts; removing one removes it for good', async () => {
    const N = 20;
    const { release, heldA, fastB, a, ids, h } = await heldBacklog(kind, N);
    await fastB.waitFor(1);
    // A's first messages hang in DATA; those claimed beyond the cap (2 of concurrency 8) while more were due are
    // parked, and stay parked while every slot is taken.
    await expect
      .poll(async () => (await h.store.scheduleStats(parkedQueue(a))).count, { timeout: 10_000, interval: 20 })
      .toBeGreaterThanOrEqual(N - 8);
    const parked = (await h.store.scheduled(parkedQueue(a), { limit: 100 })).map((e) => e.id);
    const waiting = async () => {
      const { counts } = await h.mail.queue.overview();
      return counts.queued + counts.sending + counts.deferred;
    };
    // B's message counts until its sent status is written.
    await expect.poll(waiting, { timeout: 5000, interval: 20 }).toBe(N);
    const overview = await h.mail.queue.overview();
    expect(overview.queue.map((m) => m.id)).toEqual(expect.arrayContaining([...ids, ...parked]));
    const page = await h.mail.queue.browse({ serverId: a });
    expect(page.items.map((m) => m.id).sort()).toEqual([...ids].sort());

    const removed = parked[0]!;
    await h.mail.queue.remove(removed, TEST_ACTOR);
    expect((await h.store.scheduled(parkedQueue(a), { limit: 100 })).map((e) => e.id)).not.toContain(removed);
    expect(await waiting()).toBe(N - 1);
    release();
    await heldA.waitFor(N - 1, 20_000);
    await allSent(h, N);
    expect(heldA.messages.some((m) => m.headers.some((l) => l.includes(removed)))).toBe(false);
    expect(received(heldA)).toEqual({ distinct: N - 1, duplicates: 0 });
  }, 60_000);
});

describe.each(redisBinary ? (['redis', 'file'] as const) : (['file'] as const))('parking and holds on %s', (kind) => {
  it('pausing a server holds its parked messages too, and resuming sends them', async () => {
    const N = 20;
    const { release, heldA, a, h } = await heldBacklog(kind, N);
    await expect
      .poll(async () => (await h.store.scheduleStats(parkedQueue(a))).count, { timeout: 10_000, interval: 20 })
      .toBeGreaterThanOrEqual(N - 8);
    await h.mail.servers.pause(a, { reason: 'test', code: 'auth_failed' });
    release();
    const statusesOfA = async () =>
      (await h.store.list<MessageDoc>(MESSAGES))
        .filter((d) => d.value.serverId === a)
        .map((d) => d.value.status)
        .sort();
    // The sends under way finish; every other message of A, parked ones included, is held.
    await expect
      .poll(async () => (await statusesOfA()).filter((s) => s !== 'sent' && s !== 'held'), {
        timeout: 15_000,
        interval: 50,
      })
      .toEqual([]);
    expect((await h.store.scheduleStats(parkedQueue(a))).count).toBe(0);
    expect((await statusesOfA()).filter((s) => s === 'held').length).toBeGreaterThanOrEqual(N - 8);

    await h.mail.queue.resumeServer(a);
    await heldA.waitFor(N, 20_000);
    await allSent(h, N + 1);
    expect(received(heldA)).toEqual({ distinct: N, duplicates: 0 });
  }, 60_000);
});

/**
 * One message of server B, then `n` of server A whose SMTP server holds every DATA answer until `release`;
 * then an instance of concurrency 8 starts delivering (on the file store, after the seeding instance closed).
 */
async function heldBacklog(kind: 'redis' | 'file', n: number) {
  const options = await storeOptions(kind);
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (release = resolve));
  cleanups.push(() => release());
  const heldA = await sink({ beforeDataReply: () => gate });
  const fastB = await sink();
  const seeder = await harness({ ...options, workers: false });
  const a = await seeder.addServer({ host: '127.0.0.1', port: heldA.port });
  const b = await seeder.addServer({ host: '127.0.0.1', port: fastB.port });
  await seeder.mail.queue.enqueue({ ...input(100), serverId: b });
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push((await seeder.mail.queue.enqueue({ ...input(i), serverId: a })).id);
  if (kind === 'file') await seeder.close();
  const h = await harness({ ...options, queue: { concurrency: 8, pollMs: 20, retryBaseMs: 50 } });
  return { release, heldA, fastB, a, b, ids, h };
}

function startChild(env: Record<string, string>): Promise<ChildProcess> {
  return startWorkerChild(env, (kill) => cleanups.push(kill));
}
