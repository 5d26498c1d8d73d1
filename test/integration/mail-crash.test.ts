import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { MESSAGES, type MessageDoc } from '../../src/mail/queue.js';
import { createFileStore } from '../../src/store/file-store.js';
import { startTestSmtp } from '../fakes/smtp-server.js';

// kill -9 of the worker process in the middle of sending: after a restart on the same data folder, every
// message ends `sent` and reaches the server; duplicates are limited to the sends in flight at the crash.

const child = fileURLToPath(new URL('../fakes/mail-worker-child.ts', import.meta.url));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

function startChild(env: Record<string, string>): {
  proc: ChildProcess;
  ready: Promise<void>;
  exited: Promise<number | null>;
} {
  const proc = spawn(process.execPath, ['--import', 'tsx', child], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(proc);
  const ready = new Promise<void>((resolve, reject) => {
    let buf = '';
    proc.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.includes('"ready":true')) resolve();
    });
    proc.once('exit', (code) => reject(new Error(`worker exited early (${code})`)));
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return { proc, ready, exited };
}

describe('kill -9 mid-send', () => {
  it('loses nothing: every message is sent after a restart', { timeout: 60_000 }, async () => {
    const N = 60;
    const sink = await startTestSmtp({ starttls: false, dataDelayMs: 40 });
    const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-crash-'));
    const env = {
      DATA_DIR: dir,
      ENCRYPTION_KEY: randomBytes(32).toString('base64'),
      SMTP_PORT: String(sink.port),
      LEASE_MS: '1500',
      MAILGATE_LOG_LEVEL: 'silent',
    };
    try {
      const first = startChild({ ...env, ENQUEUE: String(N) });
      await first.ready;
      await sink.waitFor(10, 20_000);
      first.proc.kill('SIGKILL');
      await first.exited;
      const beforeRestart = sink.messages.length;
      expect(beforeRestart, 'the kill came after everything was sent').toBeLessThan(N);

      const second = startChild(env);
      await second.ready;
      const ids = () => new Set(sink.messages.map((m) => m.headers.find((h) => h.startsWith('Message-ID:'))));
      const deadline = Date.now() + 30_000;
      while (ids().size < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(ids().size, `distinct messages received after the restart (${sink.messages.length} in all)`).toBe(N);
      // Claims the killed worker held (on messages it had already marked sent) expire after the lease; give the
      // restarted worker time to drop those stale schedule entries before stopping it.
      await new Promise((r) => setTimeout(r, 2 * 1500 + 500));
      second.proc.kill('SIGTERM');
      expect(await second.exited, 'graceful stop of the restarted worker').toBe(0);

      const store = await createFileStore(dir);
      try {
        const docs = await store.list<MessageDoc>(MESSAGES);
        expect(docs).toHaveLength(N);
        expect(docs.filter((d) => d.value.status !== 'sent').map((d) => [d.id, d.value.status])).toEqual([]);
        expect((await store.scheduleStats('mail')).count).toBe(0);
      } finally {
        await store.close();
      }
      // At least once: only the messages in flight at the kill (at most the worker concurrency) may repeat.
      const copies = new Map<string | undefined, number>();
      for (const m of sink.messages) {
        const id = m.headers.find((h) => h.startsWith('Message-ID:'));
        copies.set(id, (copies.get(id) ?? 0) + 1);
      }
      // One kill: a message can have been sent by the killed worker and again by the restarted one, no more.
      expect(Math.max(...copies.values()), 'most copies of one message').toBeLessThanOrEqual(2);
      const duplicates = sink.messages.length - N;
      expect(duplicates, 'duplicates beyond the sends in flight at the kill').toBeLessThanOrEqual(8);
    } finally {
      await sink.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
