import { mkdtemp, open, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { messageInput } from '../../src/mail/compose.js';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { eventually, TEST_ACTOR } from '../fakes/mail-services.js';
import { startTestSmtp, type TestSmtp } from '../fakes/smtp-server.js';

// What a message costs the embedded store in fsyncs with MAILGATE_FSYNC=always: the document's journal line is
// synced when the message is accepted and when its outcome is written; schedule lines (its place in the queue,
// the claim's lease, the sent index) are written but not synced, since the queue rebuilds its schedules from
// the documents at start. Every fsync of the real file handles is counted.

type Handle = Awaited<ReturnType<typeof open>>;

async function fileHandlePrototype(): Promise<Handle> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-proto-'));
  const handle = await open(path.join(dir, 'x'), 'w');
  await handle.close();
  await rm(dir, { recursive: true, force: true });
  return Object.getPrototypeOf(handle) as Handle;
}

let app: TestApp | undefined;
let smtp: TestSmtp | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await app?.close();
  await smtp?.close();
  app = smtp = undefined;
});

describe('fsyncs per message on the embedded store', () => {
  it('syncs a message twice, when accepted and when sent, with MAILGATE_FSYNC=always', async () => {
    smtp = await startTestSmtp({ starttls: false });
    app = await startTestApp({ store: 'file', workers: true, env: { MAILGATE_FSYNC: 'always' } });
    const queue = app.services.mail.queue;
    const server = await app.services.mail.servers.create(
      { name: 'relay', fromAddress: 'notify@example.com', host: '127.0.0.1', port: smtp.port, tls: false },
      { actor: TEST_ACTOR },
    );
    // One at a time, so no two messages share a group commit and every sync is counted for one message.
    const enqueue = async (i: number) =>
      (
        await queue.enqueue({
          ...messageInput.parse({ to: `r${i}@example.net`, subject: 's', text: 't' }),
          serverId: server.id,
        })
      ).id;
    const sent = (id: string, i: number) =>
      eventually(
        () => queue.get(id),
        (m) => m.status === 'sent',
        10_000,
        `message ${i} sent`,
      );
    // A message reads as sent before its outcome's line is synced; an accepted message only after its own. Lines of
    // one journal are written in order, so an enqueue's return also means every earlier outcome is synced: each
    // one marks an edge of the counted window. The first message creates the files (and syncs their folder once).
    await sent(await enqueue(0), 0);
    let id = await enqueue(1);
    const proto = await fileHandlePrototype();
    // eslint-disable-next-line @typescript-eslint/unbound-method
    const { sync } = proto;
    let syncs = 0;
    vi.spyOn(proto, 'sync').mockImplementation(async function (this: Handle) {
      syncs++;
      await sync.call(this);
    });
    const count = 8;
    for (let i = 1; i <= count; i++) {
      await sent(id, i);
      id = await enqueue(i + 1);
    }
    // Counted: the outcomes of messages 1…count and the acceptances of 2…count+1.
    const counted = syncs;
    await sent(id, count + 1);
    expect(smtp.messages).toHaveLength(count + 2);
    expect(counted / count).toBeLessThanOrEqual(2);
  });
});
