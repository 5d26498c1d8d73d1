import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { TEST_ACTOR } from '../fakes/oauth-setup.js';
import { startWebhookReceiver, type WebhookReceiver } from '../fakes/webhook-receiver.js';

/**
 * queue.backlog from the queue's own counters (no scan): reported once when the waiting mail reaches 80 % of
 * MAILGATE_QUEUE_MAX_MESSAGES, over when it drops below 50 %, and reported again on the next rise. A channel
 * limited to other event types gets none of it.
 */

let app: TestApp;
let receiver: WebhookReceiver;
let serverId: string;
const secret = randomBytes(32).toString('hex');

beforeAll(async () => {
  app = await startTestApp({ env: { MAILGATE_QUEUE_MAX_MESSAGES: '10' } });
  receiver = await startWebhookReceiver(secret);
  const server = await app.services.mail.servers.create(
    { name: 'relay', fromAddress: 'a@example.test', host: '127.0.0.1', port: 2525, tls: false },
    { actor: TEST_ACTOR },
  );
  serverId = server.id;
  // Outgoing mail off: messages wait (held) without any delivery attempt.
  await app.services.mail.servers.setOutgoingEnabled(false, { actor: TEST_ACTOR });
  const { channels } = app.services.notify;
  await channels.create(
    { name: 'backlog', type: 'webhook', url: receiver.url, secret, events: ['queue.backlog'] },
    TEST_ACTOR,
  );
  await channels.create(
    { name: 'grants only', type: 'webhook', url: `${receiver.url}?grants`, secret, events: ['grant.needs_reauth'] },
    TEST_ACTOR,
  );
});

afterAll(async () => {
  await app?.close();
  await receiver?.close();
});

async function enqueue(n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++)
    ids.push(
      (await app.services.mail.queue.enqueue({ serverId, to: ['b@example.test'], subject: `m${i}`, text: 'x' })).id,
    );
  return ids;
}

async function checkAndDeliver(): Promise<void> {
  await app.services.notify.check();
  await app.services.notify.worker.runOnce();
  await app.services.notify.worker.runOnce();
}

describe('queue.backlog', () => {
  it('is reported once per rise past 80 %, with hysteresis', async () => {
    const first = await enqueue(7);
    await checkAndDeliver();
    expect(receiver.requests).toBe(0);
    first.push(...(await enqueue(1)));
    await checkAndDeliver();
    await checkAndDeliver();
    expect(receiver.ofType('queue.backlog')).toHaveLength(1);
    expect(receiver.accepted[0]!.message).toContain('8 messages');
    // Down to 6 (still above 50 %): the backlog is not over, nothing new.
    for (const id of first.splice(0, 2)) await app.services.mail.queue.remove(id, TEST_ACTOR);
    await checkAndDeliver();
    expect(await app.services.notify.notifier.stateOf('backlog', 'queue:mail')).toBe('backlog');
    // Down to 4: over. Up to 8 again: reported again.
    for (const id of first.splice(0, 2)) await app.services.mail.queue.remove(id, TEST_ACTOR);
    await checkAndDeliver();
    expect(await app.services.notify.notifier.stateOf('backlog', 'queue:mail')).toBe('ok');
    await enqueue(4);
    await checkAndDeliver();
    expect(receiver.ofType('queue.backlog')).toHaveLength(2);
    expect(receiver.requests).toBe(2);
  });
});
