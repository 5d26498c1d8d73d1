import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import nodemailer from 'nodemailer';
import { afterAll, describe, expect, it } from 'vitest';
import { MESSAGES, type MessageDoc } from '../../src/mail/queue.js';
import { createFileStore } from '../../src/store/file-store.js';
import { startTestApp } from '../fakes/app.js';
import { TEST_ACTOR } from '../fakes/oauth-setup.js';

/**
 * `250` only after the durable write: the real process (src/main.ts) receives messages on its submission front
 * with MAILGATE_FSYNC=always, is killed with SIGKILL while clients are still sending, and every message it
 * answered 250 for is in the store when the data folder is opened again.
 */

const main = fileURLToPath(new URL('../../src/main.ts', import.meta.url));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

async function waitForGreeting(port: number, deadlineMs: number): Promise<void> {
  while (Date.now() < deadlineMs) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('data', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the submission front did not come up');
}

describe('kill -9 after 250', () => {
  it('loses nothing that was acknowledged', { timeout: 90_000 }, async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-submission-crash-'));
    try {
      // The server and the key are made in this process first; the embedded store then goes to the child.
      const setup = await startTestApp({ env: { MAILGATE_DATA_DIR: dir } });
      await setup.services.mail.servers.create(
        { name: 'relay', fromAddress: 'app@example.test', host: '127.0.0.1', port: 2, protocol: 'smtp' },
        { actor: TEST_ACTOR },
      );
      const key = await setup.apiKey(['send']);
      const env = { ...setup.env };
      await setup.close();

      const smtpPort = await freePort();
      const proc = spawn(process.execPath, ['--import', 'tsx', main], {
        env: {
          ...process.env,
          ...env,
          MAILGATE_DATA_DIR: dir,
          PORT: String(await freePort()),
          MAILGATE_SUBMISSION_PORT: String(smtpPort),
          MAILGATE_FSYNC: 'always',
          MAILGATE_WORKERS: 'false',
          MAILGATE_LOG_LEVEL: 'silent',
        },
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      children.push(proc);
      const exited = new Promise((resolve) => proc.once('exit', resolve));
      await waitForGreeting(smtpPort, Date.now() + 30_000);

      const client = nodemailer.createTransport({
        host: '127.0.0.1',
        port: smtpPort,
        pool: true,
        maxConnections: 4,
        requireTLS: true,
        tls: { rejectUnauthorized: false },
        auth: { user: 'crash', pass: key },
      });
      const acknowledged: string[] = [];
      let killed = false;
      const sends = Array.from({ length: 200 }, (_, i) =>
        client
          .sendMail({ from: 'app@example.test', to: `r${i}@example.net`, subject: `m${i}`, text: 'x'.repeat(2000) })
          .then((info) => {
            acknowledged.push(/queued as (\S+)/.exec(String(info.response))![1]!);
            if (acknowledged.length === 20 && !killed) {
              killed = true;
              proc.kill('SIGKILL');
            }
          })
          .catch(() => undefined),
      );
      await Promise.all(sends);
      client.close();
      await exited;
      expect(killed).toBe(true);
      expect(acknowledged.length).toBeGreaterThanOrEqual(20);
      expect(acknowledged.length, 'the kill came after everything was sent').toBeLessThan(200);

      const store = await createFileStore(dir);
      try {
        const ids = new Set((await store.list<MessageDoc>(MESSAGES)).map((d) => d.id));
        expect(acknowledged.filter((id) => !ids.has(id))).toEqual([]);
      } finally {
        await store.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
