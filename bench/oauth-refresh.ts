/**
 * Token refresh figures: `npx tsx bench/oauth-refresh.ts` (also run at the end of `npm run bench`).
 *
 * Against a local oidc-provider acting as Microsoft (rotating refresh tokens, 3-second access tokens):
 *   - 200 concurrent getAccessToken calls at the moment of expiry in one process, 3 rounds;
 *   - the same spread over 3 processes sharing one Redis (70 callers each), when redis-server is available.
 * Prints the refresh requests the provider received per round (the target is exactly 1) and the wall time.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../src/config.js';
import { Keyring } from '../src/crypto/keyring.js';
import { createLogger } from '../src/log.js';
import { createServices, type Services } from '../src/services.js';
import { openStore } from '../src/store/open-store.js';
import { GRANTS, type GrantRecord } from '../src/tokens/grants.js';
import { authorizeThroughServices, createOAuthServer, providerEnv } from '../test/fakes/oauth-setup.js';
import { startFakeProvider, type FakeProvider } from '../test/fakes/oidc-provider.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function untilExpired(services: Services, grantId: string): Promise<void> {
  const doc = await services.store.get<GrantRecord>(GRANTS, grantId);
  await sleep(Math.max(0, doc!.value.tokens.expiresAt - Date.now() + 50));
}

async function build(provider: FakeProvider, extra: Record<string, string>) {
  const env = {
    NODE_ENV: 'test',
    MAILGATE_ENCRYPTION_KEYS: `b1:${randomBytes(32).toString('base64')}`,
    MAILGATE_SESSION_SECRETS: randomBytes(32).toString('base64url'),
    MAILGATE_WORKERS: 'false',
    ...providerEnv(provider),
    ...extra,
  };
  const config = loadConfig(env);
  const store = await openStore(config);
  const services = await createServices({
    config,
    store,
    keyring: new Keyring(config.encryptionKeys ?? []),
    log: createLogger({ level: 'silent' }),
  });
  const { serverId } = await createOAuthServer(services, provider, 2525);
  await authorizeThroughServices(services, serverId);
  return { env, store, services, serverId };
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

async function startRedis(): Promise<{ url: string; stop(): void } | null> {
  if (process.env.MAILGATE_BENCH_REDIS_URL) return { url: process.env.MAILGATE_BENCH_REDIS_URL, stop() {} };
  const port = await freePort();
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  const failed = await new Promise<boolean>((resolve) => {
    child.once('error', () => resolve(true));
    setTimeout(() => resolve(false), 300);
  });
  if (failed) return null;
  return { url: `redis://127.0.0.1:${port}`, stop: () => child.kill('SIGTERM') };
}

function worker(env: Record<string, string>): { ready: Promise<void>; result: Promise<string>; go(): void } {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(here, '../test/fakes/token-worker.ts')], {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  let onReady: () => void = () => {};
  let onResult: (s: string) => void = () => {};
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString();
    if (out.includes('READY\n')) onReady();
    const m = /RESULT (.*)\n/.exec(out);
    if (m) onResult(m[1]!);
  });
  return {
    ready: new Promise((r) => (onReady = r)),
    result: new Promise((r) => (onResult = r)),
    go: () => child.stdin.write('go\n'),
  };
}

export async function oauthRefreshBench(): Promise<void> {
  console.log('\nOAuth token refresh (local oidc-provider as Microsoft, rotating refresh tokens, 3 s access tokens)');
  const provider = await startFakeProvider({ kind: 'microsoft', accessTokenTtlSec: 3 });
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-bench-oauth-'));
  try {
    const one = await build(provider, { MAILGATE_DATA_DIR: dataDir });
    for (let round = 1; round <= 3; round++) {
      await untilExpired(one.services, one.serverId);
      const before = provider.counts.refresh;
      const t0 = performance.now();
      const tokens = await Promise.all(
        Array.from({ length: 200 }, () => one.services.tokens.getAccessToken(one.serverId)),
      );
      const ms = performance.now() - t0;
      console.log(
        `  1 process, 200 concurrent callers at expiry, round ${round}: ${provider.counts.refresh - before} refresh request(s), ${new Set(tokens.map((t) => t.accessToken)).size} distinct token(s), ${ms.toFixed(0)} ms`,
      );
    }
    await one.store.close();

    const redis = await startRedis();
    if (!redis) {
      console.log('  3 processes on Redis: skipped (no redis-server; set MAILGATE_BENCH_REDIS_URL)');
      return;
    }
    try {
      const shared = await build(provider, {
        REDIS_URL: redis.url,
        MAILGATE_REDIS_PREFIX: `bench:${randomBytes(4).toString('hex')}:`,
      });
      const workers = Array.from({ length: 3 }, () =>
        worker({ ...shared.env, TOKEN_WORKER_GRANT: shared.serverId, TOKEN_WORKER_CALLERS: '70' }),
      );
      await Promise.all(workers.map((w) => w.ready));
      await untilExpired(shared.services, shared.serverId);
      const before = provider.counts.refresh;
      const t0 = performance.now();
      for (const w of workers) w.go();
      const results = (await Promise.all(workers.map((w) => w.result))).map(
        (r) => JSON.parse(r) as { fingerprints: string[]; errors: string[] },
      );
      const ms = performance.now() - t0;
      const distinct = new Set(results.flatMap((r) => r.fingerprints)).size;
      const errors = results.flatMap((r) => r.errors).length;
      console.log(
        `  3 processes × 70 callers on one Redis at expiry: ${provider.counts.refresh - before} refresh request(s), ${distinct} distinct token(s), ${errors} error(s), ${ms.toFixed(0)} ms`,
      );
      await shared.store.close();
    } finally {
      redis.stop();
    }
  } finally {
    await provider.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await oauthRefreshBench();
  process.exit(0);
}
