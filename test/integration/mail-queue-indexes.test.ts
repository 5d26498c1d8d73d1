import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { clockReading, type Clock } from '../../src/clock.js';
import { messageInput } from '../../src/mail/compose.js';
import {
  FAILED_INDEX,
  HELD_INDEX,
  MAIL_QUEUE,
  MESSAGES,
  SENT_INDEX,
  type MessageDoc,
  type MessageStatus,
  type MessageView,
} from '../../src/mail/queue.js';
import { createFileStore } from '../../src/store/file-store.js';
import { createRedisStore } from '../../src/store/redis-store.js';
import type { Store } from '../../src/store/store.js';
import {
  eventually,
  startMailHarness,
  TEST_ACTOR,
  type MailHarness,
  type MailHarnessOptions,
} from '../fakes/mail-services.js';
import { redisUrlForTests, uniquePrefix } from '../fakes/redis.js';
import { startTestSmtp, type TestSmtp } from '../fakes/smtp-server.js';

// The queue's status indexes (held, failed, sent, next to the waiting queue) on both stores: the admin overview
// and the retention sweep read them instead of every message, each transition moves a message between them,
// and messages written before they existed are indexed once at start.

const DAY = 86_400_000;
const harnesses: MailHarness[] = [];
const closeAfter: { close(): Promise<void> }[] = [];
const folders: string[] = [];

afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
});
afterAll(async () => {
  for (const c of closeAfter.splice(0)) await c.close();
  for (const f of folders.splice(0)) await rm(f, { recursive: true, force: true });
});

async function smtp(options: Parameters<typeof startTestSmtp>[0] = {}): Promise<TestSmtp> {
  const s = await startTestSmtp({ starttls: false, ...options });
  closeAfter.push(s);
  return s;
}

const msg = (to: string) => messageInput.parse({ to, subject: `to ${to}`, text: 'hello' });

async function until(h: MailHarness, id: string, status: MessageView['status']): Promise<MessageView> {
  return eventually(
    () => h.mail.queue.get(id),
    (m) => m.status === status,
    10_000,
    `message ${id} ${status}`,
  );
}

async function indexed(store: Store, queue: string): Promise<string[]> {
  return (await store.scheduled(queue, { limit: 1000 })).map((e) => e.id).sort();
}

/** A message document as versions without the status indexes left it: in the store, in no index. */
function oldMessage(status: MessageStatus, at: number): MessageDoc {
  return {
    serverId: 'srv_old',
    status,
    heldReason: status === 'held' ? 'server_paused' : null,
    attempts: status === 'held' ? 0 : 1,
    createdAt: at,
    updatedAt: at,
    nextAttemptAt: null,
    sentAt: status === 'sent' ? at : null,
    lastError:
      status === 'failed' ? { code: 'rejected', message: '550 no such user', hint: 'Check the address.', at } : null,
    recipients: [{ address: 'old@example.net', kind: 'to', status: status === 'sent' ? 'accepted' : 'pending' }],
    input: messageInput.parse({ to: 'old@example.net', subject: `old ${status}`, text: 'x' }),
    apiKeyId: null,
    smtpResponse: null,
  };
}

interface Backing {
  /** Options that put a harness on this backing (a fresh one per call unless `reuse` is given). */
  options(reuse?: MailHarnessOptions): Promise<MailHarnessOptions>;
  /** The store of that backing, opened directly (the harness must not be running on the file store). */
  open(options: MailHarnessOptions): Promise<Store>;
}

function indexTests(name: string, backing: Backing): void {
  describe(name, () => {
    async function harness(
      queue: MailHarnessOptions['queue'] = {},
      reuse?: MailHarnessOptions,
      clock?: Clock,
    ): Promise<MailHarness> {
      const h = await startMailHarness({
        ...(await backing.options(reuse)),
        queue: { pollMs: 20, retryBaseMs: 30, maxAttempts: 2, leaseMs: 5000, ...queue },
        ...(clock ? { clock } : {}),
      });
      harnesses.push(h);
      return h;
    }

    it('moves each message to the index of its status; the overview lists failed and held messages from the indexes', async () => {
      const good = await smtp();
      // The refusing server answers only while `badAnswers` is open, so the test can look between resend and refusal.
      let badAnswers: Promise<void> = Promise.resolve();
      const bad = await smtp({
        onData: () => ({ code: 550, message: '5.1.1 no such user' }),
        beforeDataReply: () => badAnswers,
      });
      const h = await harness();
      const goodId = await h.addServer({ host: '127.0.0.1', port: good.port });
      const badId = await h.addServer({ host: '127.0.0.1', port: bad.port });

      const sent = (await h.mail.queue.enqueue({ ...msg('sent@example.net'), serverId: goodId })).id;
      const failed = (await h.mail.queue.enqueue({ ...msg('failed@example.net'), serverId: badId })).id;
      await until(h, sent, 'sent');
      await until(h, failed, 'failed');
      await h.mail.servers.setOutgoingEnabled(false, { actor: TEST_ACTOR });
      const held = await h.mail.queue.enqueue({ ...msg('held@example.net'), serverId: goodId });
      expect(held.status).toBe('held');

      expect(await indexed(h.store, MAIL_QUEUE)).toEqual([]);
      expect(await indexed(h.store, HELD_INDEX)).toEqual([held.id]);
      expect(await indexed(h.store, FAILED_INDEX)).toEqual([failed]);
      expect(await indexed(h.store, SENT_INDEX)).toEqual([sent]);
      // The sent index is keyed by the time the message is due for deletion.
      const sentAt = Date.parse((await h.mail.queue.get(sent)).sentAt!);
      expect(await h.store.scheduled(SENT_INDEX, { limit: 10 })).toEqual([{ id: sent, dueAt: sentAt + 7 * DAY }]);

      const overview = await h.mail.queue.overview();
      expect(overview.counts).toEqual({ queued: 0, sending: 0, deferred: 0, held: 1, failed: 1, sent: 1 });
      expect(overview.queue.map((m) => m.id)).toEqual([held.id]);
      expect(overview.errors.map((m) => m.id)).toEqual([failed]);
      expect(overview.oldestAgeMs).not.toBeNull();

      // The error queue comes from its index: a failed message out of the index is out of the page.
      await h.store.unschedule(FAILED_INDEX, failed);
      expect((await h.mail.queue.overview()).errors).toEqual([]);
      await h.store.schedule(FAILED_INDEX, failed, Date.now());

      // Releasing reads the held index and moves the message back to the queue; resend takes a failed one out
      // of the error queue; delete leaves no index entry behind.
      await h.mail.servers.setOutgoingEnabled(true, { actor: TEST_ACTOR });
      await until(h, held.id, 'sent');
      expect(await indexed(h.store, HELD_INDEX)).toEqual([]);
      expect(await indexed(h.store, SENT_INDEX)).toEqual([held.id, sent].sort());
      let openBadAnswers = (): void => undefined;
      badAnswers = new Promise((resolve) => (openBadAnswers = resolve));
      await h.mail.queue.resend(failed, TEST_ACTOR);
      expect(await indexed(h.store, FAILED_INDEX)).toEqual([]);
      openBadAnswers();
      await until(h, failed, 'failed');
      expect(await indexed(h.store, FAILED_INDEX)).toEqual([failed]);
      await h.mail.queue.remove(failed, TEST_ACTOR);
      for (const queue of [MAIL_QUEUE, HELD_INDEX, FAILED_INDEX]) expect(await indexed(h.store, queue)).toEqual([]);
      expect((await h.mail.queue.overview()).counts).toEqual({
        queued: 0,
        sending: 0,
        deferred: 0,
        held: 0,
        failed: 0,
        sent: 2,
      });
    });

    it('cleanup deletes a sent message past its retention together with its index entry', async () => {
      const s = await smtp();
      let now = Date.now();
      const h = await harness(
        { keepSentMs: 100 },
        undefined,
        clockReading(() => now),
      );
      const serverId = await h.addServer({ host: '127.0.0.1', port: s.port });
      const { id } = await h.mail.queue.enqueue({ ...msg('a@example.net'), serverId });
      await until(h, id, 'sent');
      expect(await indexed(h.store, SENT_INDEX)).toEqual([id]);
      now += 150;
      // A stale entry (its message deleted some other way) is dropped on the way.
      await h.store.schedule(SENT_INDEX, 'msg_gone', now - 1);
      expect(await h.mail.queue.cleanup()).toBe(1);
      await expect(h.mail.queue.get(id)).rejects.toMatchObject({ code: 'not_found' });
      expect(await h.store.scheduleStats(SENT_INDEX)).toEqual({ count: 0, earliestDueAt: null });
      expect((await h.mail.queue.overview()).counts.sent).toBe(0);
    });

    it('indexes messages written before the indexes existed, once, at start; an expired sent one is deleted', async () => {
      const options = await backing.options();
      const now = Date.now();
      const old = {
        held: oldMessage('held', now - 3 * DAY),
        failedEarlier: oldMessage('failed', now - 2 * DAY),
        failedLater: oldMessage('failed', now - DAY),
        sentFresh: oldMessage('sent', now - DAY),
        sentExpired: oldMessage('sent', now - 8 * DAY),
      };
      const store = await backing.open(options);
      for (const [id, doc] of Object.entries(old)) await store.put(MESSAGES, `msg_${id}`, doc);
      for (const queue of [MAIL_QUEUE, HELD_INDEX, FAILED_INDEX, SENT_INDEX])
        expect(await store.scheduleStats(queue)).toEqual({ count: 0, earliestDueAt: null });
      await store.close();

      const h = await harness({}, options);
      await eventually(
        () => h.store.get(MESSAGES, 'msg_sentExpired'),
        (d) => d === null,
        5000,
        'expired sent message deleted',
      );
      const overview = await h.mail.queue.overview();
      expect(overview.counts).toEqual({ queued: 0, sending: 0, deferred: 0, held: 1, failed: 2, sent: 1 });
      expect(overview.queue.map((m) => m.id)).toEqual(['msg_held']);
      expect(overview.oldestAgeMs).toBeGreaterThanOrEqual(3 * DAY);
      expect(overview.errors.map((m) => m.id)).toEqual(['msg_failedLater', 'msg_failedEarlier']);
      expect(await h.store.scheduled(SENT_INDEX, { limit: 10 })).toEqual([
        { id: 'msg_sentFresh', dueAt: now - DAY + 7 * DAY },
      ]);
      expect(await h.store.scheduled(HELD_INDEX, { limit: 10 })).toEqual([{ id: 'msg_held', dueAt: now - 3 * DAY }]);
      expect(await h.mail.queue.overview(1)).toMatchObject({ errors: [{ id: 'msg_failedLater' }] });
      // Redis records that the indexes are built, so later starts skip the walk; the file store walks at every
      // start anyway (it repairs the window between a document line and its schedule lines) and needs no marker.
      expect(await h.store.get('mail_meta', 'indexes-v1')).toEqual(
        h.store.kind === 'redis' ? expect.objectContaining({ version: 1 }) : null,
      );
    });
  });
}

indexTests('status indexes on the file store', {
  async options(reuse) {
    if (reuse) return reuse;
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-indexes-'));
    folders.push(dataDir);
    return { dataDir };
  },
  open: (options) => createFileStore(options.dataDir!),
});

describe('status indexes on the file store after a kill between a document line and its schedule lines', () => {
  it('puts each message in the index of its status only, and drops entries of messages that are gone', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-indexes-'));
    folders.push(dataDir);
    const store = await createFileStore(dataDir);
    const now = Date.now();
    // Failed, but its move out of the queue was lost: still due in `mail`, absent from `mail-failed`.
    await store.put(MESSAGES, 'msg_failed', oldMessage('failed', now - 1000), {
      schedule: { queue: MAIL_QUEUE, dueAt: now + 60_000 },
    });
    // Sent, and also (wrongly) still in the held index.
    await store.put(MESSAGES, 'msg_sent', oldMessage('sent', now - 1000), {
      schedule: [
        { queue: HELD_INDEX, dueAt: now - 5000 },
        { queue: SENT_INDEX, dueAt: now - 1000 + 7 * DAY },
      ],
    });
    await store.schedule(FAILED_INDEX, 'msg_deleted', now - 10);
    await store.close();

    const h = await startMailHarness({ dataDir, queue: { pollMs: 20, retryBaseMs: 30, maxAttempts: 2 } });
    harnesses.push(h);
    expect(await indexed(h.store, MAIL_QUEUE)).toEqual([]);
    expect(await indexed(h.store, HELD_INDEX)).toEqual([]);
    expect(await h.store.scheduled(FAILED_INDEX, { limit: 10 })).toEqual([{ id: 'msg_failed', dueAt: now - 1000 }]);
    expect(await indexed(h.store, SENT_INDEX)).toEqual(['msg_sent']);
    expect((await h.mail.queue.overview()).counts).toEqual({
      queued: 0,
      sending: 0,
      deferred: 0,
      held: 0,
      failed: 1,
      sent: 1,
    });
  });
});

const redisUrl = redisUrlForTests();
describe.skipIf(!redisUrl)('redis', () => {
  indexTests('status indexes on Redis', {
    async options(reuse) {
      return reuse ?? { redis: { url: redisUrl!, prefix: uniquePrefix('mailidx') } };
    },
    open: (options) => createRedisStore(options.redis!),
  });
});
