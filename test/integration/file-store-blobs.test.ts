import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_BODY_CHARS } from '../../src/mail/compose.js';
import { MESSAGES } from '../../src/mail/queue.js';
import { createServerInput } from '../../src/mail/servers.js';
import { createFileStore } from '../../src/store/file-store.js';
import { startTestApp, type TestApp } from '../fakes/app.js';

// Message bodies on the embedded store stay on disk: the heap does not grow with the bytes waiting in the queue.

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

function heapUsed(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** The largest body the API takes (about 1 MB). */
const MB = MAX_BODY_CHARS;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** About `bytes` of text that does not compress into a shared string. */
function body(seed: number, bytes: number): string {
  const line = `message ${seed}: ${'lorem ipsum dolor sit amet '.repeat(3)}\n`;
  return line.repeat(Math.ceil(bytes / line.length)).slice(0, bytes);
}

describe('message bodies on the embedded store', () => {
  it('queuing 50 messages of about 1 MB through the API grows the heap by far less than the queued bytes', async () => {
    const app: TestApp = await startTestApp({ store: 'file' });
    cleanups.push(() => app.close());
    const key = await app.apiKey(['send']);
    await app.services.mail.servers.create(
      createServerInput.parse({
        name: 'Relay',
        fromAddress: 'notify@example.com',
        host: '127.0.0.1',
        port: 2525,
        authMethod: 'none',
        isDefault: true,
      }),
      { actor: { type: 'system', id: 'test' } },
    );
    const count = 50;
    const queue = async (i: number) => {
      const res = await fetch(`${app.url}/api/v1/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ to: 'a@example.net', subject: `large ${i}`, text: body(i, MB) }),
      });
      expect(res.status).toBe(202);
    };
    // The first request loads and compiles code on both sides: not part of what is measured.
    await queue(0);
    const before = heapUsed();
    for (let i = 1; i <= count; i++) await queue(i);
    const growth = heapUsed() - before;
    expect((await app.store.list(MESSAGES)).length).toBe(count + 1);
    // Before, every body stayed in the store's memory: at least the 50 MB queued.
    expect(growth).toBeLessThan((count * MB) / 10);
    const one = (await app.store.list<{ input: { text: string } }>(MESSAGES))[7]!;
    expect(one.value.input.text).toHaveLength(MB);
  });

  it('reads large values back after a restart and deletes the files of superseded and deleted versions', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-blobs-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const blobs = () => readdir(path.join(dir, 'store', 'blobs')).catch(() => [] as string[]);
    let store = await createFileStore(dir);
    await store.put('messages', 'a', { text: body(1, 100_000) });
    await store.put('messages', 'a', { text: body(2, 100_000) }, { ifVersion: 1 });
    await store.put('messages', 'b', { text: body(3, 100_000) });
    await store.put('messages', 'small', { text: 'hi' });
    expect(await blobs()).toHaveLength(2);
    await store.close();

    store = await createFileStore(dir);
    cleanups.push(() => store.close());
    expect(await store.get('messages', 'a')).toEqual({ id: 'a', version: 2, value: { text: body(2, 100_000) } });
    expect((await store.list('messages')).map((d) => d.id)).toEqual(['a', 'b', 'small']);
    await store.delete('messages', 'b');
    await store.put('messages', 'a', { text: 'now small' }, { ifVersion: 2 });
    expect(await blobs()).toHaveLength(0);
    expect(await store.get('messages', 'a')).toMatchObject({ version: 3, value: { text: 'now small' } });
  });
});
