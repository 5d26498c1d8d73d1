import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AuditLog } from '../../src/admin/audit.js';
import type { Actor } from '../../src/admin/types.js';
import type { Clock } from '../../src/clock.js';
import { loadConfig, type Config } from '../../src/config.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { createLogger } from '../../src/log.js';
import { createMailServices, type MailServices, type MailServicesDeps } from '../../src/mail/service.js';
import type { CreateServerInput, ResolvedServer } from '../../src/mail/servers.js';
import { createFileStore } from '../../src/store/file-store.js';
import { createRedisStore } from '../../src/store/redis-store.js';
import type { Store } from '../../src/store/store.js';

/**
 * The outgoing-mail services on a real store, without the web layer: for queue tests, the crash test's child
 * process and the benchmark. Same construction as src/services.ts (createMailServices).
 */

export const TEST_ACTOR: Actor = { type: 'system', id: 'test' };

/** A server as the transport sees it: plain SMTP on loopback with STARTTLS required, no authentication. */
export function resolvedServerForTests(partial: Partial<ResolvedServer> & { port: number }): ResolvedServer {
  return {
    id: 'srv_test',
    version: 1,
    source: 'ui',
    name: 'Test',
    fromAddress: 'notify@example.com',
    emailPrefix: null,
    protocol: 'smtp',
    host: '127.0.0.1',
    timeoutMs: 5000,
    tls: true,
    authMethod: 'none',
    oauthIntegrationId: null,
    username: null,
    password: null,
    passwordVersion: 1,
    ehloName: null,
    ...partial,
  };
}

export interface MailHarnessOptions {
  /** A file-store folder (default: a fresh temp dir), or a Redis URL + prefix. */
  dataDir?: string;
  redis?: { url: string; prefix: string; mode?: 'single' | 'cluster' };
  /** Shared encryption key (base64), so several harnesses on one Redis open each other's secrets. */
  encryptionKey?: string;
  env?: Record<string, string>;
  tlsCa?: string[];
  queue?: MailServicesDeps['queue'];
  maxConnections?: number;
  workers?: boolean;
  /** The queue's clock (tests move time instead of waiting for it); default the system clock. */
  clock?: Clock;
}

export interface MailHarness {
  mail: MailServices;
  store: Store;
  config: Config;
  encryptionKey: string;
  addServer(input: Partial<CreateServerInput> & { host: string; port: number }): Promise<string>;
  close(): Promise<void>;
}

export async function startMailHarness(options: MailHarnessOptions = {}): Promise<MailHarness> {
  const ownDir = options.dataDir ? null : await mkdtemp(path.join(os.tmpdir(), 'mailgate-mail-'));
  const dataDir = options.dataDir ?? ownDir!;
  const encryptionKey = options.encryptionKey ?? randomBytes(32).toString('base64');
  const config = loadConfig({
    NODE_ENV: 'test',
    MAILGATE_DATA_DIR: dataDir,
    MAILGATE_ENCRYPTION_KEYS: `t1:${encryptionKey}`,
    MAILGATE_SESSION_SECRETS: 'x'.repeat(40),
    MAILGATE_LOG_LEVEL: 'silent',
    ...(options.redis
      ? {
          REDIS_URL: options.redis.url,
          MAILGATE_REDIS_PREFIX: options.redis.prefix,
          MAILGATE_REDIS_MODE: options.redis.mode ?? 'single',
        }
      : {}),
    ...options.env,
  });
  const store = options.redis
    ? await createRedisStore({ url: options.redis.url, prefix: options.redis.prefix, mode: options.redis.mode })
    : await createFileStore(dataDir);
  const keyring = new Keyring(config.encryptionKeys ?? []);
  const log = createLogger({ level: config.MAILGATE_LOG_LEVEL });
  const mail = createMailServices({
    config,
    store,
    keyring,
    log,
    audit: new AuditLog(store),
    ...(options.tlsCa ? { tlsCa: options.tlsCa } : {}),
    ...(options.queue ? { queue: options.queue } : {}),
    ...(options.maxConnections ? { maxConnections: options.maxConnections } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
  });
  await mail.start({ workers: options.workers ?? true });
  return {
    mail,
    store,
    config,
    encryptionKey,
    async addServer(input) {
      const view = await mail.servers.create(
        { name: `srv ${input.port}`, fromAddress: 'notify@example.com', ...input },
        { actor: TEST_ACTOR },
      );
      return view.id;
    },
    async close() {
      await mail.stop();
      await store.close();
      if (ownDir) await rm(ownDir, { recursive: true, force: true });
    },
  };
}

/** Polls until `check` holds (or throws with the last value). */
export async function eventually<T>(
  read: () => Promise<T>,
  check: (value: T) => boolean,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (check(value)) return value;
    if (Date.now() > deadline)
      throw new Error(`${what} not reached within ${timeoutMs} ms; last: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
