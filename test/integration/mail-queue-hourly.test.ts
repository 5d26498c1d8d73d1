import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clockReading } from '../../src/clock.js';
import { messageInput } from '../../src/mail/compose.js';
import type { HourlyOutcomes, MessageView } from '../../src/mail/queue.js';
import { eventually, startMailHarness, TEST_ACTOR, type MailHarness } from '../fakes/mail-services.js';
import { redisUrlForTests, uniquePrefix } from '../fakes/redis.js';
import { startTestSmtp, type TestSmtp } from '../fakes/smtp-server.js';

// The chart's hourly counters: every outcome write counts its hour in the same step, so the chart never reads
// the messages (a deleted message stays counted), a deferral counts each time, and the embedded store rebuilds
// them from the messages after a restart.

const HOUR = 3_600_000;
// Half past an hour, so a few minutes of real time never cross into the next one.
const START = Date.UTC(2026, 10, 2, 9, 30);

let smtp: TestSmtp;
beforeAll(async () => {
  smtp = await startTestSmtp({
    starttls: false,
    onData: (m) => {
      if (m.to[0]!.startsWith('later')) return { code: 451, message: '4.3.0 try again later' };
      if (m.to[0]!.startsWith('never')) return { code: 550, message: '5.1.1 no such user' };
      return undefined;
    },
  });
});
afterAll(() => smtp.close());

const hourOf = (h: HourlyOutcomes, at: number) => h.hours.indexOf(Math.floor(at / HOUR) * HOUR);

async function run(h: MailHarness, to: string, status: MessageView['status']): Promise<string> {
  const serverId = (await h.mail.servers.list())[0]!.id;
  const { id } = await h.mail.queue.enqueue({ ...messageInput.parse({ to, subject: 's', text: 't' }), serverId });
  await eventually(
    () => h.mail.queue.get(id),
    (m) => m.status === status,
    10_000,
    `${id} ${status}`,
  );
  return id;
}

for (const kind of ['file', 'redis'] as const) {
  describe.skipIf(kind === 'redis' && !redisUrlForTests())(`hourly outcome counters (${kind} store)`, () => {
    it('counts sent, deferred (each time) and failed in the hour they happened, without reading messages', async () => {
      let now = START;
      const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-hourly-'));
      const h = await startMailHarness({
        dataDir,
        clock: clockReading(() => now),
        queue: { pollMs: 20, retryBaseMs: HOUR / 4, maxAttempts: 3, leaseMs: 5000 },
        ...(kind === 'redis' ? { redis: { url: redisUrlForTests()!, prefix: uniquePrefix('hourly') } } : {}),
      });
      try {
        await h.addServer({ host: '127.0.0.1', port: smtp.port, tls: false });
        const sent = await run(h, 'ok@example.net', 'sent');
        await run(h, 'never@example.net', 'failed');
        const later = await run(h, 'later@example.net', 'deferred');

        let hourly = await h.mail.queue.hourly();
        expect(hourly.hours).toHaveLength(168);
        const first = hourOf(hourly, START);
        expect(first).toBe(167);
        expect([hourly.counts.sent[first], hourly.counts.deferred[first], hourly.counts.failed[first]]).toEqual([
          1, 1, 1,
        ]);

        // Two hours on, the deferred message is due again and deferred a second time, in that hour.
        now = START + 2 * HOUR;
        await h.mail.queue.flush(TEST_ACTOR);
        await eventually(
          () => h.mail.queue.get(later),
          (m) => m.attempts === 2,
          10_000,
          'second attempt',
        );
        // Deleting a message does not take it out of the chart: the counters are the record, not the messages.
        await h.mail.queue.remove(sent, TEST_ACTOR);
        hourly = await h.mail.queue.hourly();
        expect(hourOf(hourly, START)).toBe(165);
        expect(hourly.counts.sent[165]).toBe(1);
        expect(hourly.counts.deferred[165]).toBe(1);
        expect(hourly.counts.deferred[167]).toBe(1);
        expect(hourly.counts.failed.reduce((a, b) => a + b)).toBe(1);

        if (kind === 'file') {
          // The embedded store's counters live in memory: a restart rebuilds them from the messages (the sent
          // one was deleted, the earlier deferral of a message is not kept).
          await h.close();
          const again = await startMailHarness({ dataDir, clock: clockReading(() => now), workers: true });
          try {
            hourly = await again.mail.queue.hourly();
            expect(hourly.counts.sent.reduce((a, b) => a + b)).toBe(0);
            expect(hourly.counts.failed[165]).toBe(1);
            expect(hourly.counts.deferred[167]).toBe(1);
          } finally {
            await again.close();
          }
        }
      } finally {
        await h.close();
        await rm(dataDir, { recursive: true, force: true });
      }
    });
  });
}
