import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { createLogger } from '../../src/log.js';
import type { ResolveAll } from '../../src/net/connect.js';
import { createServices, type Services } from '../../src/services.js';
import { openStore } from '../../src/store/open-store.js';
import { TEST_ACTOR } from './oauth-setup.js';

/** A mailgate on the embedded store with fast queue polling, for the HTTP transport suites. */
export interface ApiInstance {
  services: Services;
  close(): Promise<void>;
}

export async function startApiInstance(
  extraEnv: Record<string, string>,
  clock?: () => number,
  options: { egressResolve?: ResolveAll } = {},
): Promise<ApiInstance> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-transport-'));
  const config = loadConfig({
    NODE_ENV: 'test',
    MAILGATE_DATA_DIR: dataDir,
    MAILGATE_FSYNC: 'off',
    MAILGATE_ENCRYPTION_KEYS: `t1:${randomBytes(32).toString('base64')}`,
    MAILGATE_SESSION_SECRETS: randomBytes(32).toString('base64url'),
    MAILGATE_QUEUE_RETRY_BASE_MS: '100',
    MAILGATE_QUEUE_CONCURRENCY: '16',
    ...extraEnv,
  });
  const store = await openStore(config);
  const services = await createServices({
    config,
    store,
    keyring: new Keyring(config.encryptionKeys ?? []),
    log: createLogger({ level: 'silent' }),
    mail: { queue: { pollMs: 50, maxRetryDelayMs: 1000 } },
    ...(clock ? { clock } : {}),
    ...(options.egressResolve ? { egressResolve: options.egressResolve } : {}),
  });
  await services.start();
  return {
    services,
    async close() {
      await services.stop();
      await store.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A Graph or Gmail API server on an existing integration, sending as `mailbox` (or `fromAddress`). */
export async function createApiServer(
  services: Services,
  options: {
    protocol: 'graph' | 'gmail_api';
    integrationId: string;
    mailbox: string;
    fromAddress?: string;
    sendAs?: string[];
  },
): Promise<string> {
  const server = await services.mail.servers.create(
    {
      name: `${options.protocol} ${options.mailbox}`,
      fromAddress: options.fromAddress ?? options.mailbox,
      protocol: options.protocol,
      authMethod: 'oauth2',
      oauthIntegrationId: options.integrationId,
      username: options.mailbox,
      timeoutMs: 5000,
      ...(options.sendAs ? { sendAs: options.sendAs } : {}),
    },
    { actor: TEST_ACTOR },
  );
  return server.id;
}

/** A MIME message without what differs between two sends of it: ids, dates, boundaries, the Bcc header. */
export function normalizedMime(mime: string): string {
  const boundaries = [...mime.matchAll(/boundary="?([^";\r\n]+)"?/g)].map((m) => m[1]!);
  let out = mime;
  boundaries.forEach((b, i) => (out = out.split(b).join(`BOUNDARY${i}`)));
  return out
    .replace(/^Message-ID: .*\r?\n/im, '')
    .replace(/^Date: .*\r?\n/im, '')
    .replace(/^Bcc: .*\r?\n/im, '')
    .replace(/\r\n/g, '\n')
    .trim();
}

export async function waitUntil(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
