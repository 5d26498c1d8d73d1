import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { clockReading } from '../../src/clock.js';
import { messageInput } from '../../src/mail/compose.js';
import { MESSAGES, type MessageDoc } from '../../src/mail/queue.js';
import { createServerInput } from '../../src/mail/servers/validation.js';
import { eventually, startMailHarness, TEST_ACTOR } from '../fakes/mail-services.js';
import { redisUrlForTests, uniquePrefix } from '../fakes/redis.js';
import { startTestSmtp } from '../fakes/smtp-server.js';

// One mailbox's backlog or rate never holds up another's, and a server's rateLimitPerMinute holds across instances.

const redisUrl = redisUrlForTests();
const cleanup: Array<{ close(): Promise<void> }> = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c.close();
});
const input = (i: number) => messageInput.parse({ to: `r${i}@example.net`, subject: `m${i}`, text: 'x' });

describe('fairness between servers and server rates', () => {
  it('a backlog of 1,000 on server A does not delay one message on server B', async () => {
    const slowA = await startTestSmtp({ starttls: false, dataDelayMs: 40 });
    const fastB = await startTestSmtp({ starttls: false });
    cleanup.push(slowA, fastB);
    const h = await startMailHarness({
      queue: { pollMs: 20, retryBaseMs: 50, concurrency: 8 },
      env: { MAILGATE_FSYNC: 'off' },
    });
    cleanup.push(h);
    const a = await h.addServer({ host: '127.0.0.1', port: slowA.port });
    const b = await h.addServer({ host: '127.0.0.1', port: fastB.port });
    for (let i = 0; i < 1000; i++) await h.mail.queue.enqueue({ ...input(i), serverId: a });
    const enqueuedAt = Date.now();
    await h.mail.queue.enqueue({ ...input(5000), serverId: b });
    await fastB.waitFor(1, 15_000);
    const waitedMs = Date.now() - enqueuedAt;
    // Were B's message behind A's backlog, A's 1,000 slow deliveries (40 ms each) would come first.
    expect(slowA.messages.length).toBeLessThan(500);
    expect(waitedMs).toBeLessThan(3000);
  }, 60_000);

  it('fills the Microsoft preset (30/min), leaves Google unset, and refuses a rate below 1 naming the field', async () => {
    const h = await startMailHarness({ env: { MAILGATE_FSYNC: 'off' } });
    cleanup.push(h);
    const microsoft = await h.mail.servers.create(
      { name: 'm', fromAddress: 'a@example.com', serviceProvider: 'microsoft' },
      { actor: TEST_ACTOR },
    );
    const google = await h.mail.servers.create(
      { name: 'g', fromAddress: 'a@example.com', serviceProvider: 'gmail' },
      { actor: TEST_ACTOR },
    );
    expect(microsoft.rateLimitPerMinute).toBe(30);
    expect(google.rateLimitPerMinute).toBeNull();
    const changed = await h.mail.servers.update(google.id, { rateLimitPerMinute: 20 }, { actor: TEST_ACTOR });
    expect(changed.rateLimitPerMinute).toBe(20);
    const bad = createServerInput.safeParse({ name: 'x', fromAddress: 'a@example.com', rateLimitPerMinute: 0 });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.path).toEqual(['rateLimitPerMinute']);
  });

  it.skipIf(!redisUrl)(
    '30/min on one server holds across two instances on Redis (injected clock)',
    async () => {
      const sink = await startTestSmtp({ starttls: false });
      cleanup.push(sink);
      const prefix = uniquePrefix('rate');
      const key = randomBytes(32).toString('base64');
      let t = Math.ceil(Date.now() / 60_000) * 60_000;
      const clock = clockReading(() => t);
      const queue = { pollMs: 10, retryBaseMs: 50, leaseMs: 600_000, concurrency: 8 };
      const one = await startMailHarness({ redis: { url: redisUrl!, prefix }, encryptionKey: key, queue, clock });
      const two = await startMailHarness({ redis: { url: redisUrl!, prefix }, encryptionKey: key, queue, clock });
      cleanup.push(one, two);
      const serverId = await one.addServer({ host: '127.0.0.1', port: sink.port, rateLimitPerMinute: 30 });
      for (let i = 0; i < 100; i++) await (i % 2 ? two : one).mail.queue.enqueue({ ...input(i), serverId });
      const settled = () =>
        eventually(
          async () => (await one.store.scheduleStats('mail')).earliestDueAt,
          (due) => due === null || due > t,
          10_000,
          'due messages handled',
        );
      // One simulated minute, a second at a time: every message due is claimed and either sent or put back.
      for (let s = 0; s < 60; s++) {
        await settled();
        t += 1000;
      }
      await settled();
      const sent = await eventually(
        async () => (await one.store.list<MessageDoc>(MESSAGES)).filter((d) => d.value.status === 'sent').length,
        (n) => n === sink.messages.length,
        5000,
        'sends recorded',
      );
      expect(sent).toBeLessThanOrEqual(31);
      expect(sent).toBeGreaterThanOrEqual(25);
      const byInstance = new Set(sink.messages.map((m) => m.ehlo));
      expect(byInstance.size).toBeGreaterThanOrEqual(1);
    },
    120_000,
  );

  it("frees a server's slot when the server has answered, before the outcome is written", async () => {
    const sink = await startTestSmtp({ starttls: false });
    cleanup.push(sink);
    const h = await startMailHarness({ workers: false, queue: { pollMs: 20, perServerConcurrency: 1 } });
    cleanup.push(h);
    const serverId = await h.addServer({ host: '127.0.0.1', port: sink.port });
    await h.mail.queue.enqueue({ ...input(1), serverId });
    await h.mail.queue.enqueue({ ...input(2), serverId });

    // Every outcome write ("status":"sent" in the journal) waits until the gate opens.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-proto-'));
    const probe = await open(path.join(dir, 'x'), 'w');
    await probe.close();
    await rm(dir, { recursive: true, force: true });
    const proto = Object.getPrototypeOf(probe) as typeof probe;
    // eslint-disable-next-line @typescript-eslint/unbound-method
    const { appendFile } = proto;
    let openGate = () => undefined as void;
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    const spy = vi.spyOn(proto, 'appendFile').mockImplementation(async function (this: typeof probe, data, options) {
      if (String(data).includes('"status":"sent"')) await gate;
      return appendFile.call(this, data, options);
    });
    try {
      await h.mail.queue.start();
      // With one slot, the second message goes out while the first one's outcome is still being written.
      await sink.waitFor(2, 10_000);
    } finally {
      openGate();
      spy.mockRestore();
    }
    const statuses = await eventually(
      async () => (await h.store.list<MessageDoc>(MESSAGES)).map((d) => d.value.status),
      (all) => all.length === 2 && all.every((status) => status === 'sent'),
      10_000,
      'outcomes written',
    );
    expect(statuses).toEqual(['sent', 'sent']);
  }, 30_000);

  it("a message waiting for its server's slot is held, not sent, when the send before it gets the server paused", async () => {
    const bad = await startTestSmtp({ starttls: false, allowInsecureAuth: true, auth: { user: 'u', pass: 'real' } });
    cleanup.push(bad);
    const h = await startMailHarness({ workers: false, queue: { pollMs: 20, perServerConcurrency: 1 } });
    cleanup.push(h);
    const serverId = await h.addServer({
      host: '127.0.0.1',
      port: bad.port,
      authMethod: 'basic',
      username: 'u',
      password: 'wrong',
    });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await h.mail.queue.enqueue({ ...input(i), serverId })).id);
    await h.mail.queue.start();
    const held = await eventually(
      async () => Promise.all(ids.map(async (id) => (await h.mail.queue.get(id)).heldReason)),
      (reasons) => reasons.every((r) => r === 'server_paused'),
      10_000,
      'all three held',
    );
    expect(held).toEqual(['server_paused', 'server_paused', 'server_paused']);
    // The first message's rejected login paused the server; the one that waited for the slot did not log in.
    expect(bad.authAttempts).toHaveLength(1);
  }, 30_000);
});
