import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { messageInput } from '../../src/mail/compose.js';
import { MESSAGES, type MessageDoc } from '../../src/mail/queue.js';
import { eventually, startMailHarness, TEST_ACTOR, type MailHarness } from '../fakes/mail-services.js';
import { redisUrlForTests, uniquePrefix } from '../fakes/redis.js';
import { startTestSmtp } from '../fakes/smtp-server.js';

// Two mailgate instances (two stores, two worker pools) on one Redis prefix share one queue: every message is
// delivered exactly once, and a server changed on one instance is used in its new form by the other.

const redisUrl = redisUrlForTests();
const cleanup: Array<{ close(): Promise<void> }> = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c.close();
});

describe.skipIf(!redisUrl)('mail queue on Redis, two instances', () => {
  it('delivers 200 messages, each exactly once, from both instances; a server change reaches the other instance', async () => {
    const sink = await startTestSmtp({ starttls: false });
    const sink2 = await startTestSmtp({ starttls: false });
    cleanup.push(sink, sink2);
    const prefix = uniquePrefix('mailq');
    const key = randomBytes(32).toString('base64');
    const queue = { pollMs: 20, retryBaseMs: 50, leaseMs: 10_000 };
    const one: MailHarness = await startMailHarness({
      redis: { url: redisUrl!, prefix },
      encryptionKey: key,
      queue,
      env: { MAILGATE_SMTP_LOCALHOST: 'one.test' },
    });
    const two: MailHarness = await startMailHarness({
      redis: { url: redisUrl!, prefix },
      encryptionKey: key,
      queue,
      env: { MAILGATE_SMTP_LOCALHOST: 'two.test' },
    });
    cleanup.push(one, two);
    const serverId = await one.addServer({ host: '127.0.0.1', port: sink.port });

    const ids: string[] = [];
    const input = (i: number) => messageInput.parse({ to: `r${i}@example.net`, subject: `m${i}`, text: 'x' });
    for (let i = 0; i < 200; i++)
      ids.push((await (i % 2 ? two : one).mail.queue.enqueue({ ...input(i), serverId })).id);
    await sink.waitFor(200, 30_000);
    // Stopping waits for every send in flight to finish and be recorded: a duplicate would be at the sink now.
    await Promise.all([one.mail.queue.stop(), two.mail.queue.stop()]);

    const messageIds = sink.messages.map((m) => m.headers.find((h) => h.startsWith('Message-ID:'))!);
    expect(messageIds).toHaveLength(200);
    expect(new Set(messageIds).size).toBe(200);
    const byInstance = {
      one: sink.messages.filter((m) => m.ehlo === 'one.test').length,
      two: sink.messages.filter((m) => m.ehlo === 'two.test').length,
    };
    expect(byInstance.one + byInstance.two).toBe(200);
    expect(byInstance.one).toBeGreaterThan(0);
    expect(byInstance.two).toBeGreaterThan(0);
    const docs = await one.store.list<MessageDoc>(MESSAGES);
    expect(docs.filter((d) => d.value.status === 'sent')).toHaveLength(200);
    expect(docs.every((d) => d.value.attempts === 1)).toBe(true);
    expect((await one.store.scheduleStats('mail')).count).toBe(0);
    await Promise.all([one.mail.queue.start(), two.mail.queue.start()]);

    // Change the server on instance one; instance two must drop its cached server and pool.
    await one.mail.servers.update(serverId, { port: sink2.port }, { actor: TEST_ACTOR });
    await eventually(
      async () => (await two.mail.servers.resolve(serverId))?.port,
      (p) => p === sink2.port,
      5000,
      'invalidation on instance two',
    );
    for (let i = 0; i < 20; i++) await two.mail.queue.enqueue({ ...input(1000 + i), serverId });
    await sink2.waitFor(20, 10_000);
    expect(sink.messages).toHaveLength(200);
  });
});
