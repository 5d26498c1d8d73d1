import { mkdtemp, open, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createFileStore } from '../../src/store/file-store.js';

// When the embedded store acknowledges a write that carries schedule moves: once the document's line is written
// (and synced with fsync on), not after its schedule lines, which are never synced and are rebuilt at start.

type Handle = Awaited<ReturnType<typeof open>>;

async function fileHandlePrototype(dir: string): Promise<Handle> {
  const handle = await open(path.join(dir, 'probe'), 'w');
  await handle.close();
  return Object.getPrototypeOf(handle) as Handle;
}

let dir: string | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('acknowledging a put with schedule moves on the embedded store', () => {
  it('resolves once the document line is written, while its schedule line is still being written', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-acks-'));
    const store = await createFileStore(dir, { fsync: true });
    // Creates the files first, so the stalled write below is the schedule line of the put under test.
    await store.put('docs', 'warm', { n: 0 }, { schedule: { queue: 'q', dueAt: 1 } });
    await store.unschedule('q', 'warm');

    const proto = await fileHandlePrototype(dir);
    // eslint-disable-next-line @typescript-eslint/unbound-method
    const { appendFile } = proto;
    let openGate = () => undefined as void;
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    let entered = () => undefined as void;
    const scheduleWriteEntered = new Promise<void>((resolve) => (entered = resolve));
    vi.spyOn(proto, 'appendFile').mockImplementation(async function (this: Handle, data, options) {
      // Schedule lines are JSON arrays (["s", id, dueAt]); journal lines are objects.
      if (String(data).startsWith('["s"')) {
        entered();
        await gate;
      }
      return appendFile.call(this, data, options);
    });

    let acknowledged = false;
    const put = store.put('docs', 'm1', { n: 1 }, { schedule: { queue: 'q', dueAt: 5 } }).then(() => {
      acknowledged = true;
    });
    await scheduleWriteEntered;
    await new Promise((resolve) => setImmediate(resolve));
    expect(acknowledged).toBe(true);
    // Memory already has the move.
    expect(await store.scheduleStats('q')).toEqual({ count: 1, earliestDueAt: 5 });

    openGate();
    await put;
    await store.close();
    const reopened = await createFileStore(dir, { fsync: true });
    expect(await reopened.scheduleStats('q')).toEqual({ count: 1, earliestDueAt: 5 });
    expect((await reopened.get('docs', 'm1'))?.value).toEqual({ n: 1 });
    await reopened.close();
  });
});
