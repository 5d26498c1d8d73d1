import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../src/admin/audit.js';
import { AuditLog } from '../../src/admin/audit.js';
import { KEY_ROTATION_LOCK, KeyRotationService } from '../../src/admin/key-rotation.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { keyUsage } from '../../src/crypto/rotation.js';
import { createRedisStore } from '../../src/store/redis-store.js';
import type { Lock, Store } from '../../src/store/store.js';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { redisUrlForTests, uniquePrefix } from '../fakes/redis.js';

/**
 * One encryption key rotation at a time on a store, whoever starts it: the API and `mailgate keys rotate`
 * take the same store lock, and a running rotation keeps extending it.
 */

const ROOT = path.resolve(import.meta.dirname, '../..');
const BIN = path.join(ROOT, 'bin', 'mailgate.js');
const oldKey = { id: 'old', key: randomBytes(32) };
const newKey = { id: 'new', key: randomBytes(32) };
const keyList = (...keys: { id: string; key: Buffer }[]) =>
  keys.map((k) => `${k.id}:${k.key.toString('base64')}`).join(',');
const BOTH_KEYS = keyList(newKey, oldKey);
const grantField = (id: string, field: 'refreshToken' | 'accessToken') => ({
  collection: 'oauth_grants',
  id,
  field: `tokens.${field}`,
});

interface GrantDoc {
  mailbox: string;
  tokens: { refreshToken: string; accessToken: string };
}

/** `documents` grants with two values sealed with the old key; ids grant-0 … */
async function seed(store: Store, documents: number): Promise<void> {
  const keyring = new Keyring([oldKey]);
  const batch: Promise<unknown>[] = [];
  for (let i = 0; i < documents; i++) {
    const id = `grant-${i}`;
    batch.push(
      store.put<GrantDoc>('oauth_grants', id, {
        mailbox: `user${i}@example.com`,
        tokens: {
          refreshToken: keyring.seal(`rt-${i}`, grantField(id, 'refreshToken')),
          accessToken: keyring.seal(`at-${i}`, grantField(id, 'accessToken')),
        },
      }),
    );
    if (batch.length >= 500) await Promise.all(batch.splice(0));
  }
  await Promise.all(batch);
}

/** Every seeded value opens with the new key alone and is the value that was sealed. */
async function expectAllOnNewKey(store: Store, documents: number): Promise<void> {
  const onlyNew = new Keyring([newKey]);
  const docs = await store.list<GrantDoc>('oauth_grants');
  expect(docs).toHaveLength(documents);
  for (const doc of docs) {
    const i = doc.id.slice('grant-'.length);
    expect(onlyNew.open(doc.value.tokens.refreshToken, grantField(doc.id, 'refreshToken'))).toBe(`rt-${i}`);
    expect(onlyNew.open(doc.value.tokens.accessToken, grantField(doc.id, 'accessToken'))).toBe(`at-${i}`);
  }
}

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runCli(args: string[], env: Record<string, string>, onStderr?: (text: string) => void): Promise<CliRun> {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? os.tmpdir(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    onStderr?.(stderr);
  });
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

async function rotateOverApi(
  app: TestApp,
  key: string,
): Promise<{ status: number; body: { error?: { code: string; message: string } } }> {
  const res = await fetch(`${app.url}/api/v1/encryption-keys/rotate`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}` },
  });
  return { status: res.status, body: (await res.json()) as { error?: { code: string; message: string } } };
}

const redisUrl = redisUrlForTests();

describe.skipIf(!redisUrl)('encryption key rotation lock on Redis', () => {
  let app: TestApp | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  const cliEnv = (a: TestApp) => ({
    REDIS_URL: redisUrl!,
    MAILGATE_REDIS_PREFIX: a.env.MAILGATE_REDIS_PREFIX!,
    MAILGATE_ENCRYPTION_KEYS: BOTH_KEYS,
    MAILGATE_SESSION_SECRETS: a.env.MAILGATE_SESSION_SECRETS!,
  });

  it('a CLI rotation and an API rotation at the same time: the API one is refused with 409, every value is re-sealed once', async () => {
    app = await startTestApp({ store: 'redis', env: { MAILGATE_ENCRYPTION_KEYS: BOTH_KEYS } });
    const documents = 4000;
    await seed(app.store, documents);
    const adminKey = await app.apiKey(['admin']);

    let apiAnswer: Promise<Awaited<ReturnType<typeof rotateOverApi>>> | undefined;
    // The CLI's first progress line comes after it took the lock and listed its work, before any write.
    const cli = await runCli(['keys', 'rotate'], cliEnv(app), (text) => {
      if (!apiAnswer && text.includes('progress:')) apiAnswer = rotateOverApi(app!, adminKey);
    });
    expect(apiAnswer).toBeDefined();
    const api = await apiAnswer!;

    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toContain(`Done: ${documents * 2} values re-sealed in ${documents} documents`);
    expect(api.status).toBe(409);
    expect(api.body.error).toMatchObject({
      code: 'conflict',
      message: expect.stringContaining('A key rotation is already running'),
    });

    await expectAllOnNewKey(app.store, documents);
    const usage = await keyUsage(app.store, new Keyring([newKey, oldKey]));
    expect(usage.perKey).toEqual({ new: documents * 2, old: 0 });
    const rotations = (await app.store.readLog<AuditEntry>('audit', { limit: 20 })).filter(
      (e) => e.entry.action === 'keys.rotate',
    );
    expect(rotations.map((e) => [e.entry.actor.type, e.entry.outcome])).toEqual([['cli', 'success']]);
    // The lock went with the CLI: the API rotates now, with nothing left to do.
    expect((await rotateOverApi(app, adminKey)).status).toBe(200);
  }, 60_000);

  it('while a rotation holds the lock, keys rotate says so and changes nothing, and the API answers 409', async () => {
    app = await startTestApp({ store: 'redis', env: { MAILGATE_ENCRYPTION_KEYS: BOTH_KEYS } });
    await seed(app.store, 50);
    const held = await app.store.acquireLock(KEY_ROTATION_LOCK, 60_000);
    expect(held).not.toBeNull();
    try {
      const cli = await runCli(['keys', 'rotate'], cliEnv(app));
      expect(cli.code).toBe(1);
      expect(cli.stderr).toContain('A key rotation is already running');
      expect(cli.stderr).toContain('Nothing was changed.');
      expect(cli.stderr).not.toMatch(/\n\s+at /);
      const api = await rotateOverApi(app, await app.apiKey(['admin']));
      expect(api.status).toBe(409);
      expect((await keyUsage(app.store, new Keyring([newKey, oldKey]))).perKey).toEqual({ new: 0, old: 100 });
    } finally {
      await held!.release();
    }
  }, 30_000);

  it('extends the lock while a rotation runs longer than the lock lifetime, and releases it at the end', async () => {
    const prefix = uniquePrefix('rotlock');
    const store = await createRedisStore({ url: redisUrl!, prefix });
    const other = await createRedisStore({ url: redisUrl!, prefix });
    try {
      await seed(store, 20);
      // The first re-sealed write waits until the test lets it go: the rotation is "long" for as long as we like.
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      let paused!: () => void;
      const reachedWrite = new Promise<void>((r) => (paused = r));
      const slowStore = new Proxy(store, {
        get(target, prop, receiver) {
          const value = Reflect.get(target, prop, receiver) as unknown;
          if (prop === 'put') {
            return async (...args: Parameters<Store['put']>) => {
              paused();
              await gate;
              return target.put(...args);
            };
          }
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      });
      const lockTtlMs = 300;
      const service = new KeyRotationService({
        store: slowStore,
        keyring: new Keyring([newKey, oldKey]),
        audit: new AuditLog(store),
        lockTtlMs,
      });
      const running = service.rotate({ type: 'system', id: 'test' }, { concurrency: 1 });
      await reachedWrite;
      // Redis expires keys on its own clock: let three lock lifetimes pass there.
      await new Promise((r) => setTimeout(r, lockTtlMs * 3));
      expect(await other.acquireLock(KEY_ROTATION_LOCK, 1000)).toBeNull();
      await expect(
        new KeyRotationService({
          store: other,
          keyring: new Keyring([newKey, oldKey]),
          audit: new AuditLog(other),
        }).rotate({ type: 'system', id: 'second' }),
      ).rejects.toMatchObject({ code: 'conflict' });
      release();
      const result = await running;
      expect(result).toMatchObject({ aborted: false, resealed: 40, documentsWritten: 20 });
      const after = await other.acquireLock(KEY_ROTATION_LOCK, 1000);
      expect(after).not.toBeNull();
      await after!.release();
    } finally {
      await other.close();
      await store.close();
    }
  }, 30_000);

  it('stops between documents and reports itself interrupted when it cannot extend its lock', async () => {
    const prefix = uniquePrefix('rotlost');
    const store = await createRedisStore({ url: redisUrl!, prefix });
    try {
      await seed(store, 20);
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      let refused!: () => void;
      const extensionRefused = new Promise<void>((r) => (refused = r));
      // The store took the lock away (say Redis was unreachable past its lifetime): every extension answers false.
      const losingStore = new Proxy(store, {
        get(target, prop, receiver) {
          const value = Reflect.get(target, prop, receiver) as unknown;
          if (prop === 'acquireLock') {
            return async (...args: Parameters<Store['acquireLock']>) => {
              const lock = await target.acquireLock(...args);
              if (!lock) return lock;
              return Object.assign(Object.create(lock) as Lock, {
                release: () => lock.release(),
                extend: async () => {
                  refused();
                  return false;
                },
              });
            };
          }
          if (prop === 'put') {
            return async (...args: Parameters<Store['put']>) => {
              await gate;
              return target.put(...args);
            };
          }
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      });
      const service = new KeyRotationService({
        store: losingStore,
        keyring: new Keyring([newKey, oldKey]),
        audit: new AuditLog(store),
        lockTtlMs: 150,
      });
      const running = service.rotate({ type: 'system', id: 'test' }, { concurrency: 1 });
      await extensionRefused;
      release();
      const result = await running;
      expect(result.aborted).toBe(true);
      // The document in flight is finished whole; nothing after it is touched.
      expect(result.documentsWritten).toBe(1);
      expect(result.perKeyAfter).toEqual({ new: 2, old: 38 });
    } finally {
      await store.close();
    }
  }, 30_000);
});
