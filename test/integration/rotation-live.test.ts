import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sealedKeyId } from '../../src/crypto/keyring.js';
import { keyUsage, rotateKeys } from '../../src/crypto/rotation.js';
import { createServerInput } from '../../src/mail/servers.js';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { redisUrlForTests } from '../fakes/redis.js';
import { startTestSmtp, type TestSmtp } from '../fakes/smtp-server.js';

// Encryption key rotation while mail flows, in the order the README gives a fleet:
// (a) append the new key, (b) move it to the front, (c) rotate, (d) remove the old key.
// Mail is sent through servers whose sealed passwords are re-sealed under the senders' feet; every
// message must reach `sent`, no instance may fail to open a value, and nothing may stay on the old key.

const OLD = `old:${randomBytes(32).toString('base64')}`;
const NEW = `new:${randomBytes(32).toString('base64')}`;
const STEP_A = `${OLD},${NEW}`;
const STEP_B = `${NEW},${OLD}`;
const PASSWORD = 'relay-password-CANARY-4711';
const FILLER_SERVERS = 1_000;

let smtp: TestSmtp;
const apps: TestApp[] = [];

beforeAll(async () => {
  smtp = await startTestSmtp({ starttls: false, allowInsecureAuth: true, auth: { user: 'relay', pass: PASSWORD } });
});

afterAll(async () => {
  for (const app of apps.reverse()) await app.close();
  await smtp?.close();
});

async function start(options: Parameters<typeof startTestApp>[0]): Promise<TestApp> {
  const app = await startTestApp({
    workers: true,
    ...options,
    env: { MAILGATE_QUEUE_RETRY_BASE_MS: '50', ...options?.env },
  });
  apps.push(app);
  return app;
}

async function stop(app: TestApp): Promise<void> {
  await app.close();
  apps.splice(apps.indexOf(app), 1);
}

async function api(app: TestApp, key: string, method: string, pathname: string, body?: unknown) {
  const res = await fetch(`${app.url}${pathname}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as Record<string, unknown>, text };
}

/** Creates the sending server plus filler servers, every one with a sealed password. */
async function seedServers(app: TestApp): Promise<string> {
  const actor = { actor: { type: 'system' as const, id: 'test' } };
  const relay = await app.services.mail.servers.create(
    createServerInput.parse({
      name: 'relay',
      fromAddress: 'notify@example.com',
      host: '127.0.0.1',
      port: smtp.port,
      authMethod: 'basic',
      username: 'relay',
      password: PASSWORD,
      isDefault: true,
    }),
    actor,
  );
  for (let i = 0; i < FILLER_SERVERS; i += 50) {
    await Promise.all(
      Array.from({ length: 50 }, (_, j) =>
        app.services.mail.servers.create(
          createServerInput.parse({
            name: `filler ${i + j}`,
            fromAddress: 'filler@example.com',
            host: 'smtp.invalid',
            tls: true,
            authMethod: 'basic',
            username: `u${i + j}`,
            password: `filler-password-${i + j}`,
          }),
          actor,
        ),
      ),
    );
  }
  return relay.id;
}

/** Sends `count` messages round-robin through the given instances while `during` runs; returns their ids. */
async function sendWhile(
  instances: { app: TestApp; key: string }[],
  during: () => Promise<unknown>,
  atLeast = 20,
): Promise<string[]> {
  const ids: string[] = [];
  let done = false;
  const sender = (async () => {
    let i = 0;
    while (!done || ids.length < atLeast) {
      const target = instances[i++ % instances.length]!;
      const res = await api(target.app, target.key, 'POST', '/api/v1/messages', {
        to: `user${i}@example.net`,
        subject: `rotation ${i}`,
        text: 'hello',
      });
      expect(res.status, res.text).toBe(202);
      ids.push(res.body.id as string);
    }
  })();
  try {
    await during();
  } finally {
    done = true;
  }
  await sender;
  return ids;
}

/** For `sendWhile` with nothing else going on: it sends its minimum, round-robin over the instances. */
const onlySend = async (): Promise<void> => undefined;

async function expectAllSent(app: TestApp, key: string, ids: string[]): Promise<void> {
  const deadline = Date.now() + 30_000;
  const pending = new Set(ids);
  while (pending.size > 0) {
    for (const id of [...pending]) {
      const res = await api(app, key, 'GET', `/api/v1/messages/${id}`);
      expect(['queued', 'sending', 'sent', 'deferred'], `${id}: ${res.text}`).toContain(res.body.status);
      if (res.body.status === 'deferred') throw new Error(`message ${id} was deferred: ${res.text}`);
      if (res.body.status === 'sent') pending.delete(id);
    }
    if (pending.size > 0 && Date.now() > deadline) throw new Error(`${pending.size} messages never reached sent`);
    if (pending.size > 0) await new Promise((r) => setTimeout(r, 50));
  }
}

function oldValues(usage: { perKey: Record<string, number> }): number {
  return usage.perKey.old ?? 0;
}

describe('encryption key rotation on the embedded store, mail flowing', () => {
  it('appends, promotes, rotates 1,000+ values while sending, then runs without the old key', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-rotation-'));
    try {
      let app = await start({ env: { MAILGATE_DATA_DIR: dataDir, MAILGATE_ENCRYPTION_KEYS: OLD } });
      await seedServers(app);
      const sendKey = await app.apiKey(['send']);
      const adminKey = await app.apiKey(['admin']);
      const sent: string[] = [];

      for (const keys of [STEP_A, STEP_B]) {
        await stop(app);
        app = await start({ env: { MAILGATE_DATA_DIR: dataDir, MAILGATE_ENCRYPTION_KEYS: keys } });
        const ids = await sendWhile([{ app, key: sendKey }], onlySend);
        await expectAllSent(app, sendKey, ids);
        sent.push(...ids);
      }

      const before = await api(app, adminKey, 'GET', '/api/v1/encryption-keys');
      expect(before.body.sealedValues as number).toBeGreaterThan(FILLER_SERVERS);
      let rotation: Awaited<ReturnType<typeof api>> | undefined;
      const during = await sendWhile([{ app, key: sendKey }], async () => {
        rotation = await api(app, adminKey, 'POST', '/api/v1/encryption-keys/rotate');
      });
      expect(rotation?.status, rotation?.text).toBe(200);
      expect(rotation?.body.resealed as number).toBeGreaterThan(FILLER_SERVERS);
      expect(rotation?.body.failures).toEqual([]);
      expect(rotation?.body.valuesPerKey).toMatchObject({ old: 0 });
      await expectAllSent(app, sendKey, during);

      const rerun = await api(app, adminKey, 'POST', '/api/v1/encryption-keys/rotate');
      expect(rerun.body.resealed).toBe(0);

      // (d) the old key is gone: mailgate starts, opens everything, and sends.
      await stop(app);
      app = await start({ env: { MAILGATE_DATA_DIR: dataDir, MAILGATE_ENCRYPTION_KEYS: NEW } });
      const after = await sendWhile([{ app, key: sendKey }], onlySend);
      await expectAllSent(app, sendKey, after);
      expect(smtp.messages.length).toBeGreaterThanOrEqual(sent.length + during.length + after.length);
      const audit = await api(app, adminKey, 'GET', '/api/v1/audit?limit=50');
      expect(audit.text).toMatch(/keys\.rotate/);

      // Nothing on disk is on the old key, and no password is there in plaintext.
      const files = await listFiles(dataDir);
      for (const file of files) {
        const text = await readFile(file, 'utf8');
        expect(text, file).not.toContain(PASSWORD);
        expect(text, file).not.toContain('filler-password-');
        for (const sealed of text.match(/mg1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+/g) ?? []) {
          expect(sealedKeyId(sealed), file).toBe('new');
        }
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 120_000);
});

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(full)));
    else if ((await stat(full)).size < 5_000_000) out.push(full);
  }
  return out;
}

describe.skipIf(!redisUrlForTests())('encryption key rotation on Redis, a mixed fleet at every step', () => {
  it('old and new key lists side by side: no decryption error, no failed send, nothing left on the old key', async () => {
    const a = await start({ store: 'redis', env: { MAILGATE_ENCRYPTION_KEYS: OLD } });
    await seedServers(a);
    const sendKey = await a.apiKey(['send']);
    const adminKey = await a.apiKey(['admin']);

    // (a) B has the new key appended; A has not been rolled yet. Both write with the old key.
    const b = await start({ shareWith: a, env: { MAILGATE_ENCRYPTION_KEYS: STEP_A } });
    const stepA = await sendWhile(
      [
        { app: a, key: sendKey },
        { app: b, key: sendKey },
      ],
      onlySend,
    );
    await expectAllSent(b, sendKey, stepA);
    await stop(a);

    // (b) C writes with the new key while B still writes with the old one; each opens what the other wrote.
    const c = await start({ shareWith: b, env: { MAILGATE_ENCRYPTION_KEYS: STEP_B } });
    await api(c, adminKey, 'POST', '/api/v1/smtp-servers', {
      name: 'written by C',
      fromAddress: 'c@example.com',
      host: '127.0.0.1',
      port: smtp.port,
      authMethod: 'basic',
      username: 'relay',
      password: PASSWORD,
    });
    const stepB = await sendWhile(
      [
        { app: b, key: sendKey },
        { app: c, key: sendKey },
      ],
      onlySend,
    );
    await expectAllSent(c, sendKey, stepB);
    const bView = await api(b, adminKey, 'GET', '/api/v1/smtp-servers');
    expect(bView.status, bView.text).toBe(200);
    await stop(b);

    // (c) rotate on C, interrupted once, while a second C-like instance sends too.
    const d = await start({ shareWith: c, env: { MAILGATE_ENCRYPTION_KEYS: STEP_B } });
    const keyring = c.services.keyring;
    let firstRun: Awaited<ReturnType<typeof rotateKeys>> | undefined;
    let secondRun: Awaited<ReturnType<typeof rotateKeys>> | undefined;
    const during = await sendWhile(
      [
        { app: c, key: sendKey },
        { app: d, key: sendKey },
      ],
      async () => {
        const controller = new AbortController();
        firstRun = await rotateKeys(c.store, keyring, {
          signal: controller.signal,
          onProgress: (p) => {
            if (p.resealed >= 300) controller.abort();
          },
        });
        secondRun = await rotateKeys(c.store, keyring);
      },
    );
    expect(firstRun?.aborted).toBe(true);
    expect(firstRun!.resealed).toBeGreaterThanOrEqual(300);
    expect(secondRun?.aborted).toBe(false);
    expect(secondRun?.failures).toEqual([]);
    // The rerun re-sealed only what the interrupted run had not done.
    expect(firstRun!.resealed + secondRun!.resealed).toBeGreaterThan(FILLER_SERVERS);
    expect(oldValues(await keyUsage(c.store, keyring))).toBe(0);
    expect((await rotateKeys(c.store, keyring)).resealed).toBe(0);
    await expectAllSent(d, sendKey, during);

    // (d) an instance without the old key starts beside the others and sends.
    const e = await start({ shareWith: c, env: { MAILGATE_ENCRYPTION_KEYS: NEW } });
    const stepD = await sendWhile(
      [
        { app: e, key: sendKey },
        { app: d, key: sendKey },
      ],
      onlySend,
    );
    await expectAllSent(e, sendKey, stepD);
    const listed = await api(e, adminKey, 'GET', '/api/v1/smtp-servers');
    expect(listed.status, listed.text).toBe(200);
    expect(listed.text).not.toContain(PASSWORD);
  }, 120_000);
});
