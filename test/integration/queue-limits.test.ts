import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HELD_INDEX, MESSAGES } from '../../src/mail/queue.js';
import { createServerInput } from '../../src/mail/servers.js';
import { WAITING_BYTES, WAITING_MESSAGES } from '../../src/mail/queue-limits.js';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { redisUrlForTests } from '../fakes/redis.js';
import { startTestSmtp, type TestSmtp } from '../fakes/smtp-server.js';

// MAILGATE_QUEUE_MAX_MESSAGES and MAILGATE_QUEUE_MAX_BYTES on a real mailgate with workers and a real smtp-server:
// outgoing mail is switched off so accepted messages stay held (they count), then on so they are delivered.

const MAX_MESSAGES = 5;
const MAX_BYTES = 20_000;
const system = { actor: { type: 'system' as const, id: 'test' } };

for (const kind of ['file', 'redis'] as const) {
  describe.skipIf(kind === 'redis' && !redisUrlForTests())(`queue limits on the ${kind} store`, () => {
    let app: TestApp;
    let smtp: TestSmtp;
    let key: string;

    async function send(body: Record<string, unknown>) {
      const res = await fetch(`${app.url}/api/v1/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ to: 'a@example.net', subject: 'limits', text: 'hello', ...body }),
      });
      return {
        status: res.status,
        retryAfter: res.headers.get('retry-after'),
        body: (await res.json()) as { id?: string; error?: { code: string; message: string } },
      };
    }

    async function waiting(): Promise<{ messages: number; bytes: number }> {
      const [messages, bytes] = await app.store.counters([WAITING_MESSAGES, WAITING_BYTES]);
      return { messages: messages!, bytes: bytes! };
    }

    async function drained(): Promise<void> {
      for (let i = 0; i < 400 && (await waiting()).messages > 0; i++) await new Promise((r) => setTimeout(r, 25));
    }

    const stored = async () => (await app.store.list(MESSAGES)).length;

    beforeAll(async () => {
      smtp = await startTestSmtp({ starttls: false });
      app = await startTestApp({
        store: kind,
        workers: true,
        env: {
          MAILGATE_QUEUE_MAX_MESSAGES: String(MAX_MESSAGES),
          MAILGATE_QUEUE_MAX_BYTES: String(MAX_BYTES),
          MAILGATE_QUEUE_RETRY_BASE_MS: '50',
        },
      });
      key = await app.apiKey(['send']);
      await app.services.mail.servers.create(
        createServerInput.parse({
          name: 'Loopback',
          fromAddress: 'notify@example.com',
          host: '127.0.0.1',
          port: smtp.port,
          authMethod: 'none',
          isDefault: true,
        }),
        system,
      );
      await app.services.mail.servers.setOutgoingEnabled(false, system);
    });

    afterAll(async () => {
      await app?.close();
      await smtp?.close();
    });

    it('refuses a message past MAILGATE_QUEUE_MAX_BYTES with 429 queue_full and Retry-After, storing nothing', async () => {
      const big = await send({ text: 'x'.repeat(MAX_BYTES) });
      expect(big.status).toBe(429);
      expect(big.retryAfter).toMatch(/^[1-9]\d*$/);
      expect(big.body.error?.code).toBe('queue_full');
      expect(await stored()).toBe(0);
      expect(await waiting()).toEqual({ messages: 0, bytes: 0 });
    });

    it('lets parallel requests take exactly MAILGATE_QUEUE_MAX_MESSAGES places, no more', async () => {
      const results = await Promise.all(
        Array.from({ length: 4 * MAX_MESSAGES }, (_, i) => send({ subject: `parallel ${i}` })),
      );
      const accepted = results.filter((r) => r.status === 202);
      const refused = results.filter((r) => r.status === 429);
      expect(accepted).toHaveLength(MAX_MESSAGES);
      expect(refused).toHaveLength(3 * MAX_MESSAGES);
      for (const r of refused) {
        expect(r.body.error?.code).toBe('queue_full');
        expect(Number(r.retryAfter)).toBeGreaterThan(0);
      }
      expect(await stored()).toBe(MAX_MESSAGES);
      const counted = await waiting();
      expect(counted.messages).toBe(MAX_MESSAGES);
      expect(counted.bytes).toBeGreaterThan(0);
      // Held messages keep their places: the next one is refused too.
      expect((await send({ subject: 'one more' })).status).toBe(429);
    });

    it('gives the places back once the messages are delivered', async () => {
      await app.services.mail.servers.setOutgoingEnabled(true, system);
      await smtp.waitFor(MAX_MESSAGES, 10_000);
      await drained();
      expect(await waiting()).toEqual({ messages: 0, bytes: 0 });
      const again = await send({ subject: 'after delivery' });
      expect(again.status).toBe(202);
      await drained();
    });

    it('gives the place of a deleted message back', async () => {
      await app.services.mail.servers.setOutgoingEnabled(false, system);
      const before = await waiting();
      expect(before).toEqual({ messages: 0, bytes: 0 });
      const r = await send({ subject: 'to delete' });
      expect(r.status).toBe(202);
      expect((await waiting()).messages).toBe(before.messages + 1);
      await app.services.mail.queue.remove(r.body.id!, system.actor);
      expect(await waiting()).toEqual(before);
    });
  });
}

describe('queue limits across a restart of the embedded store', () => {
  it('counts the waiting messages again at start, with or without workers, so the limit still holds', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-limits-restart-'));
    const env = {
      MAILGATE_DATA_DIR: dataDir,
      MAILGATE_QUEUE_MAX_MESSAGES: '3',
      MAILGATE_SEND_DISABLED: 'true',
      MAILGATE_ENCRYPTION_KEYS: `t1:${randomBytes(32).toString('base64')}`,
    };
    const post = async (app: TestApp, key: string) =>
      (
        await fetch(`${app.url}/api/v1/messages`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ to: 'a@example.net', subject: 'kept', text: 'hi' }),
        })
      ).status;
    try {
      const first = await startTestApp({ store: 'file', workers: true, env });
      const key = await first.apiKey(['send']);
      await first.services.mail.servers.create(
        createServerInput.parse({
          name: 'Relay',
          fromAddress: 'notify@example.com',
          host: '127.0.0.1',
          port: 2525,
          authMethod: 'none',
          isDefault: true,
        }),
        system,
      );
      expect([await post(first, key), await post(first, key)]).toEqual([202, 202]);
      await first.close();

      for (const workers of [true, false]) {
        const again = await startTestApp({ store: 'file', workers, env });
        // What src/main.ts does in every process; the harness starts background work only with workers.
        if (!workers) await again.services.start();
        try {
          expect(await again.store.counters([WAITING_MESSAGES])).toEqual([2]);
          expect(await post(again, key)).toBe(202);
          expect(await post(again, key)).toBe(429);
          await again.services.mail.queue.remove((await again.store.list(MESSAGES))[0]!.id, system.actor);
        } finally {
          await again.close();
        }
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!redisUrlForTests())('queue limits on Redis with messages of an earlier version', () => {
  it('counts waiting messages written without a size once, at the first start of the workers', async () => {
    const web = await startTestApp({ store: 'redis', workers: false, env: { MAILGATE_SEND_DISABLED: 'true' } });
    let workers: TestApp | undefined;
    try {
      const server = await web.services.mail.servers.create(
        createServerInput.parse({
          name: 'Relay',
          fromAddress: 'notify@example.com',
          host: '127.0.0.1',
          port: 2525,
          authMethod: 'none',
          isDefault: true,
        }),
        system,
      );
      const now = Date.now();
      // As an earlier version stored it: no size, already in the held index.
      const old = {
        serverId: server.id,
        status: 'held',
        heldReason: 'sending_disabled',
        attempts: 0,
        createdAt: now,
        updatedAt: now,
        nextAttemptAt: null,
        sentAt: null,
        lastError: null,
        recipients: [{ address: 'a@example.net', kind: 'to', status: 'pending' }],
        input: { to: ['a@example.net'], subject: 'old', text: 'hi' },
        apiKeyId: null,
        smtpResponse: null,
      };
      await web.store.put(MESSAGES, 'msg_old', old, { ifVersion: 0, schedule: { queue: HELD_INDEX, dueAt: now } });
      expect(await web.store.counters([WAITING_MESSAGES])).toEqual([0]);

      workers = await startTestApp({ shareWith: web, workers: true });
      expect(await workers.store.counters([WAITING_MESSAGES, WAITING_BYTES])).toEqual([1, 0]);
      // Once only: another start adds nothing.
      await workers.services.mail.queue.stop();
      await workers.services.mail.queue.start();
      expect(await workers.store.counters([WAITING_MESSAGES])).toEqual([1]);
      await workers.services.mail.queue.remove('msg_old', system.actor);
      expect(await workers.store.counters([WAITING_MESSAGES, WAITING_BYTES])).toEqual([0, 0]);
    } finally {
      await workers?.close();
      await web.close();
    }
  });
});
