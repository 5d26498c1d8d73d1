import { mkdtemp, open, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { TEST_ACTOR } from '../fakes/mail-services.js';

// With MAILGATE_FSYNC=always (the product's default; test apps turn it off) the embedded store answers a write only once it is fsynced, so the
// HTTP 202 of POST /api/v1/messages never comes before the message's journal line is on disk. Every fsync of
// the real file handles is held back here until the test lets it go, and the order of events is recorded.

type Handle = Awaited<ReturnType<typeof open>>;

async function fileHandlePrototype(): Promise<Handle> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-proto-'));
  const handle = await open(path.join(dir, 'x'), 'w');
  await handle.close();
  await rm(dir, { recursive: true, force: true });
  return Object.getPrototypeOf(handle) as Handle;
}

let app: TestApp | undefined;
let releaseHeld = () => undefined as void;
afterEach(async () => {
  releaseHeld();
  vi.restoreAllMocks();
  await app?.close();
  app = undefined;
});

async function postProbe(env: Record<string, string>) {
  app = await startTestApp({ store: 'file', env });
  const server = await app.services.mail.servers.create(
    { name: 'relay', fromAddress: 'notify@example.com', host: '127.0.0.1', port: 2525 },
    { actor: TEST_ACTOR },
  );
  const key = await app.apiKey(['send']);
  return () =>
    fetch(`${app!.url}/api/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ serverId: server.id, to: 'a@example.net', subject: 'fsync-probe', text: 'x' }),
    });
}

describe('acknowledged only once on disk (embedded store)', () => {
  it('MAILGATE_FSYNC=always: the 202 comes after the message line is written and fsynced', async () => {
    const send = await postProbe({ MAILGATE_FSYNC: 'always' });
    const proto = await fileHandlePrototype();
    const written = new WeakMap<object, string>();
    const events: string[] = [];
    const held: { handle: object; release: () => void }[] = [];
    releaseHeld = () => held.splice(0).forEach((h) => h.release());
    // Kept to call on the real handle (`this`) from inside the wrappers.
    // eslint-disable-next-line @typescript-eslint/unbound-method
    const { appendFile, sync } = proto;
    vi.spyOn(proto, 'appendFile').mockImplementation(async function (
      this: Handle,
      ...args: Parameters<Handle['appendFile']>
    ) {
      await appendFile.apply(this, args);
      const text = String(args[0]);
      written.set(this, text);
      if (text.includes('fsync-probe')) events.push('message line written');
    });
    vi.spyOn(proto, 'sync').mockImplementation(async function (this: Handle) {
      const probe = written.get(this)?.includes('fsync-probe') === true;
      if (probe) await new Promise<void>((release) => held.push({ handle: this, release }));
      await sync.call(this);
      if (probe) events.push('message line fsynced');
    });

    let answered = false;
    const response = send().then((res) => {
      answered = true;
      events.push(`answered ${res.status}`);
      return res;
    });
    // The message's journal line reaches its fsync, which is held: no answer may come meanwhile.
    await expect.poll(() => held.length, { timeout: 10_000, interval: 10 }).toBeGreaterThan(0);
    // Nothing signals an answer that does not come: an early one would be sent within milliseconds of the append.
    await new Promise((r) => setTimeout(r, 200));
    expect(answered, 'answered before the fsync finished').toBe(false);

    for (const h of held.splice(0)) h.release();
    expect((await response).status).toBe(202);
    expect(events).toEqual(['message line written', 'message line fsynced', 'answered 202']);
  });

  it('MAILGATE_FSYNC=off: the 202 comes without any fsync', async () => {
    const send = await postProbe({ MAILGATE_FSYNC: 'off' });
    const proto = await fileHandlePrototype();
    const sync = vi.spyOn(proto, 'sync');
    expect((await send()).status).toBe(202);
    expect(sync).not.toHaveBeenCalled();
  });
});
