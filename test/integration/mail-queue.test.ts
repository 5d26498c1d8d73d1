import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { clockReading } from '../../src/clock.js';
import { messageInput } from '../../src/mail/compose.js';
import { MAIL_QUEUE, MESSAGES, type MessageView } from '../../src/mail/queue.js';
import { eventually, startMailHarness, type MailHarness } from '../fakes/mail-services.js';
import { startTestSmtp, type TestSmtp, type TestSmtpOptions } from '../fakes/smtp-server.js';

// The queue on the embedded store against real smtp-servers: TLS both ways, retries with backoff, the error
// queue, pausing a server whose credentials are rejected (without delaying the others), graceful stop.

const PASSWORD = 'relay secret 456';
const harnesses: MailHarness[] = [];
const smtps: TestSmtp[] = [];

afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
});
afterAll(async () => {
  for (const s of smtps.splice(0)) await s.close();
});

async function smtp(options: TestSmtpOptions = {}): Promise<TestSmtp> {
  const s = await startTestSmtp(options);
  smtps.push(s);
  return s;
}

async function harness(ca: string[] = [], maxAttempts = 4): Promise<MailHarness> {
  const h = await startMailHarness({ tlsCa: ca, queue: { pollMs: 20, retryBaseMs: 30, maxAttempts, leaseMs: 5000 } });
  harnesses.push(h);
  return h;
}

const msg = (to: string, extra: Record<string, unknown> = {}) =>
  messageInput.parse({ to, subject: `to ${to}`, text: 'hello', ...extra });

async function until(
  h: MailHarness,
  id: string,
  status: MessageView['status'],
  timeoutMs = 10_000,
): Promise<MessageView> {
  return eventually(
    () => h.mail.queue.get(id),
    (m) => m.status === status,
    timeoutMs,
    `message ${id} ${status}`,
  );
}

describe('mail queue', () => {
  it('delivers over STARTTLS (tls on) with the test CA', async () => {
    const s = await smtp({ auth: { user: 'u', pass: PASSWORD } });
    const h = await harness([s.ca]);
    const serverId = await h.addServer({
      host: '127.0.0.1',
      port: s.port,
      tls: true,
      authMethod: 'basic',
      username: 'u',
      password: PASSWORD,
    });
    const { id } = await h.mail.queue.enqueue({ ...msg('a@example.net'), serverId });
    await until(h, id, 'sent');
    expect(s.messages[0]).toMatchObject({ secure: true, authUser: 'u', to: ['a@example.net'] });
    // Once delivered, the body is no longer kept in the store; the subject and recipients stay for the record.
    const stored = (await h.store.get<{ input: Record<string, unknown> }>(MESSAGES, id))!.value.input;
    expect(stored).toMatchObject({ subject: 'to a@example.net', to: ['a@example.net'] });
    expect(stored).not.toHaveProperty('text');
    expect(stored).not.toHaveProperty('html');
    expect(s.messages[0]!.headers).toContain(`Message-ID: <${id}@example.com>`);
  });

  it('puts a waiting message that lost its schedule entry (a kill between the two writes) back in the queue at start', async () => {
    const s = await smtp();
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-resched-'));
    try {
      const first = await startMailHarness({ dataDir, workers: false });
      const serverId = await first.addServer({ host: '127.0.0.1', port: s.port });
      const { id } = await first.mail.queue.enqueue({ ...msg('lost@example.net'), serverId });
      // What a kill -9 after the message's line and before its schedule line leaves behind.
      await first.store.unschedule(MAIL_QUEUE, id);
      expect(await first.store.scheduleStats(MAIL_QUEUE)).toEqual({ count: 0, earliestDueAt: null });
      await first.close();

      const second = await startMailHarness({
        dataDir,
        tlsCa: [s.ca],
        queue: { pollMs: 20, retryBaseMs: 30, maxAttempts: 4 },
      });
      harnesses.push(second);
      await until(second, id, 'sent');
      expect(s.messages.map((m) => m.to)).toEqual([['lost@example.net']]);
    } finally {
      for (const h of harnesses.splice(0)) await h.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('delivers over implicit TLS (smtps)', async () => {
    const s = await smtp({ secure: true, auth: { user: 'u', pass: PASSWORD } });
    const h = await harness([s.ca]);
    const serverId = await h.addServer({
      host: '127.0.0.1',
      port: s.port,
      protocol: 'smtps',
      authMethod: 'basic',
      username: 'u',
      password: PASSWORD,
    });
    const { id } = await h.mail.queue.enqueue({ ...msg('a@example.net'), serverId });
    await until(h, id, 'sent');
    expect(s.messages[0]!.secure).toBe(true);
  });

  it('451 twice, then accepted: deferred with backoff, sent on the third attempt', async () => {
    let calls = 0;
    const s = await smtp({
      starttls: false,
      onMailFrom: () => (++calls <= 2 ? { code: 451, message: '4.3.0 try later' } : undefined),
    });
    const h = await harness();
    const serverId = await h.addServer({ host: '127.0.0.1', port: s.port });
    const { id } = await h.mail.queue.enqueue({ ...msg('a@example.net'), serverId });
    const deferred = await until(h, id, 'deferred');
    expect(deferred.lastError).toMatchObject({ code: 'temporary_rejection', responseCode: 451 });
    expect(deferred.nextAttemptAt).not.toBeNull();
    const sent = await until(h, id, 'sent');
    expect(sent.attempts).toBe(3);
    expect(s.messages).toHaveLength(1);
  });

  it('a deferred message is tried again once the queue clock reaches its backoff time', async () => {
    let calls = 0;
    const s = await smtp({
      starttls: false,
      onMailFrom: () => (++calls === 1 ? { code: 451, message: '4.3.0 try later' } : undefined),
    });
    let now = Date.now();
    const h = await startMailHarness({
      queue: { pollMs: 20, retryBaseMs: 60_000, maxAttempts: 4, leaseMs: 5000 },
      clock: clockReading(() => now),
    });
    harnesses.push(h);
    const serverId = await h.addServer({ host: '127.0.0.1', port: s.port });
    const { id } = await h.mail.queue.enqueue({ ...msg('a@example.net'), serverId });
    const deferred = await until(h, id, 'deferred');
    // The first retry waits a random point in the upper half of the base delay, measured on the queue clock.
    const dueAt = Date.parse(deferred.nextAttemptAt!);
    expect(dueAt).toBeGreaterThanOrEqual(now + 30_000);
    expect(dueAt).toBeLessThanOrEqual(now + 60_000);
    now = dueAt;
    const sent = await until(h, id, 'sent');
    expect(sent.attempts).toBe(2);
    expect(s.messages).toHaveLength(1);
  });

  it('421 at connect and a dropped connection are retried', async () => {
    let connects = 0;
    let datas = 0;
    const s = await smtp({
      starttls: false,
      onConnect: () => (++connects === 1 ? { code: 421, message: 'busy' } : undefined),
      onData: () => (++datas === 1 ? 'drop' : undefined),
    });
    const h = await harness();
    const serverId = await h.addServer({ host: '127.0.0.1', port: s.port });
    const { id } = await h.mail.queue.enqueue({ ...msg('a@example.net'), serverId });
    const sent = await until(h, id, 'sent');
    expect(sent.attempts).toBeGreaterThanOrEqual(3);
    expect(s.messages).toHaveLength(1);
  });

  it('550 goes to the error queue at once, with the reply and a hint', async () => {
    const s = await smtp({ starttls: false, onData: () => ({ code: 550, message: '5.7.1 Message rejected as spam' }) });
    const h = await harness();
    const serverId = await h.addServer({ host: '127.0.0.1', port: s.port });
    const { id } = await h.mail.queue.enqueue({ ...msg('a@example.net'), serverId });
    const failed = await until(h, id, 'failed');
    expect(failed.attempts).toBe(1);
    expect(failed.lastError).toMatchObject({ responseCode: 550, message: expect.stringContaining('spam') });
    expect(failed.lastError!.hint.length).toBeGreaterThan(10);
    const overview = await h.mail.queue.overview();
    expect(overview.errors.map((m) => m.id)).toContain(id);
  });

  it('temporary failures give up after the attempt limit', async () => {
    const s = await smtp({ starttls: false, onMailFrom: () => ({ code: 451, message: 'always later' }) });
    const h = await harness([], 3);
    const serverId = await h.addServer({ host: '127.0.0.1', port: s.port });
    const { id } = await h.mail.queue.enqueue({ ...msg('a@example.net'), serverId });
    const failed = await until(h, id, 'failed');
    expect(failed.attempts).toBe(3);
    expect(failed.lastError!.message).toMatch(/gave up after 3 attempts/);
  });

  it('rejected credentials pause the server and hold its mail without burning attempts; others keep flowing; new password resumes', async () => {
    const bad = await smtp({ starttls: false, allowInsecureAuth: true, auth: { user: 'u', pass: 'the real one' } });
    const good = await smtp({ starttls: false });
    const h = await harness();
    const badId = await h.addServer({
      host: '127.0.0.1',
      port: bad.port,
      authMethod: 'basic',
      username: 'u',
      password: 'wrong',
    });
    const goodId = await h.addServer({ host: '127.0.0.1', port: good.port });
    const held = [];
    for (let i = 0; i < 6; i++)
      held.push((await h.mail.queue.enqueue({ ...msg(`b${i}@example.net`), serverId: badId })).id);
    const flowing = [];
    for (let i = 0; i < 6; i++)
      flowing.push((await h.mail.queue.enqueue({ ...msg(`g${i}@example.net`), serverId: goodId })).id);
    for (const id of flowing) await until(h, id, 'sent');
    for (const id of held) {
      const m = await until(h, id, 'held');
      expect(m).toMatchObject({ heldReason: 'server_paused', attempts: 0 });
    }
    expect((await h.mail.servers.get(badId)).paused).toMatchObject({ code: 'auth_failed' });
    // Only the messages in flight when the first rejection came tried to log in, not one per message per retry.
    expect(bad.authAttempts.length).toBeLessThanOrEqual(8);
    const attemptsBefore = bad.authAttempts.length;
    // The workers go on delivering for the good server; the paused one sees no login meanwhile.
    await until(h, (await h.mail.queue.enqueue({ ...msg('g-after@example.net'), serverId: goodId })).id, 'sent');
    expect(bad.authAttempts.length).toBe(attemptsBefore);

    await h.mail.servers.update(
      badId,
      { changePassword: true, password: 'the real one' },
      { actor: { type: 'system', id: 't' } },
    );
    for (const id of held) await until(h, id, 'sent');
    expect((await h.mail.servers.get(badId)).paused).toBeNull();
    expect(bad.messages).toHaveLength(6);
  });

  it('a new message for a paused server is held at once', async () => {
    const s = await smtp({ starttls: false });
    const h = await harness();
    const serverId = await h.addServer({ host: '127.0.0.1', port: s.port });
    await h.mail.servers.pause(serverId, { reason: 'test', code: 'auth_failed' });
    const r = await h.mail.queue.enqueue({ ...msg('a@example.net'), serverId });
    expect(r.status).toBe('held');
    expect(await h.mail.queue.resumeServer(serverId)).toBe(1);
    await until(h, r.id, 'sent');
  });

  it('resend, delete and flush', async () => {
    const s = await smtp({ starttls: false, onData: () => ({ code: 554, message: '5.0.0 no' }) });
    const h = await harness();
    const serverId = await h.addServer({ host: '127.0.0.1', port: s.port });
    const { id } = await h.mail.queue.enqueue({ ...msg('a@example.net'), serverId });
    await until(h, id, 'failed');
    const actor = { type: 'system', id: 't' } as const;
    const again = await h.mail.queue.resend(id, actor);
    expect(again).toMatchObject({ status: 'queued', attempts: 0 });
    await until(h, id, 'failed');
    // Flush is for waiting messages: a failed one stays failed until someone resends it.
    expect(await h.mail.queue.flush(actor)).toBe(0);
    expect((await h.mail.queue.get(id)).status).toBe('failed');
    await h.mail.queue.remove(id, actor);
    await expect(h.mail.queue.get(id)).rejects.toMatchObject({ code: 'not_found' });
  });

  it('flush sends a deferred message now instead of at its next attempt', async () => {
    let refuse = true;
    const s = await smtp({
      starttls: false,
      onData: () => (refuse ? { code: 451, message: '4.3.0 try later' } : undefined),
    });
    // The first retry would come a minute later: only the flush can bring it within the wait below.
    const h = await startMailHarness({ queue: { pollMs: 20, retryBaseMs: 60_000, maxAttempts: 4, leaseMs: 5000 } });
    harnesses.push(h);
    const serverId = await h.addServer({ host: '127.0.0.1', port: s.port });
    const { id } = await h.mail.queue.enqueue({ ...msg('a@example.net'), serverId });
    const deferred = await until(h, id, 'deferred');
    expect(Date.parse(deferred.nextAttemptAt!) - Date.now()).toBeGreaterThan(20_000);
    refuse = false;
    expect(await h.mail.queue.flush({ type: 'system', id: 't' })).toBe(1);
    await until(h, id, 'sent', 5000);
    expect(s.messages.map((m) => m.to[0])).toEqual(['a@example.net']);
  });

  it('graceful stop waits for an in-flight send and records it', async () => {
    const s = await smtp({ starttls: false, dataDelayMs: 600 });
    const h = await startMailHarness({ queue: { pollMs: 20, retryBaseMs: 30, maxAttempts: 3, leaseMs: 5000 } });
    const serverId = await h.addServer({ host: '127.0.0.1', port: s.port });
    const { id } = await h.mail.queue.enqueue({ ...msg('a@example.net'), serverId });
    await until(h, id, 'sending');
    await h.mail.queue.stop();
    expect((await h.mail.queue.get(id)).status).toBe('sent');
    await h.close();
  });

  it('a changed server gets a new transport (no stale pool)', async () => {
    const one = await smtp({ starttls: false });
    const two = await smtp({ starttls: false });
    const h = await harness();
    const serverId = await h.addServer({ host: '127.0.0.1', port: one.port });
    await until(h, (await h.mail.queue.enqueue({ ...msg('a@example.net'), serverId })).id, 'sent');
    await h.mail.servers.update(serverId, { port: two.port }, { actor: { type: 'system', id: 't' } });
    await until(h, (await h.mail.queue.enqueue({ ...msg('b@example.net'), serverId })).id, 'sent');
    expect(one.messages.map((m) => m.to[0])).toEqual(['a@example.net']);
    expect(two.messages.map((m) => m.to[0])).toEqual(['b@example.net']);
  });
});

describe('retention', () => {
  it('deletes sent messages past the retention, keeps the rest', async () => {
    const s = await smtp({ starttls: false });
    let now = Date.now();
    const h = await startMailHarness({ queue: { pollMs: 20, keepSentMs: 100 }, clock: clockReading(() => now) });
    harnesses.push(h);
    const serverId = await h.addServer({ host: '127.0.0.1', port: s.port });
    const { id } = await h.mail.queue.enqueue({ ...msg('a@example.net'), serverId });
    await until(h, id, 'sent');
    await h.mail.servers.setOutgoingEnabled(false, { actor: { type: 'system', id: 't' } });
    const held = await h.mail.queue.enqueue({ ...msg('b@example.net'), serverId });
    now += 150;
    expect(await h.mail.queue.cleanup()).toBe(1);
    await expect(h.mail.queue.get(id)).rejects.toMatchObject({ code: 'not_found' });
    expect((await h.mail.queue.get(held.id)).status).toBe('held');
  });
});
