import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { GRANTS, type GrantRecord } from '../../src/tokens/grants.js';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { authorizeThroughServices, createOAuthServer, providerEnv } from '../fakes/oauth-setup.js';
import { startFakeProvider, type FakeProvider } from '../fakes/oidc-provider.js';
import { redisUrlForTests } from '../fakes/redis.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The workers' refresh lock: 1 s request timeout + this margin; a frozen holder is waited out past it. */
const WORKER_LOCK_MARGIN_MS = 1000;
const WORKER_LOCK_TTL_MS = 1000 + WORKER_LOCK_MARGIN_MS;
const workerScript = path.resolve(import.meta.dirname, '../fakes/token-worker.ts');

interface Worker {
  child: ChildProcess;
  lines: string[];
  waitFor(prefix: string, timeoutMs?: number): Promise<string>;
  /** Starts the callers, with the worker's clock `clockOffsetMs` ahead of the system clock like the parent's. */
  go(clockOffsetMs: number): void;
  /** Lets a worker stopped at its pause point (LOCKED, RESPONDED) go on. */
  resume(): void;
}

function startWorker(env: Record<string, string>): Worker {
  const child = spawn(process.execPath, ['--import', 'tsx', workerScript], {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let buffer = '';
  child.stdout.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    let i;
    while ((i = buffer.indexOf('\n')) >= 0) {
      lines.push(buffer.slice(0, i));
      buffer = buffer.slice(i + 1);
    }
  });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return {
    child,
    lines,
    async waitFor(prefix, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const line = lines.find((l) => l.startsWith(prefix));
        if (line) return line;
        if (Date.now() > deadline || child.exitCode !== null)
          throw new Error(`worker: no ${prefix} (exit ${child.exitCode}); stderr: ${stderr.slice(-800)}`);
        await sleep(20);
      }
    },
    go(clockOffsetMs) {
      child.stdin.write(`go ${clockOffsetMs}\n`);
    },
    resume() {
      child.stdin.write('resume\n');
    },
  };
}

function resultOf(line: string): {
  fingerprints: string[];
  errors: string[];
  stats: { refreshRequests: number; lockLost: number; staleWritesRejected: number };
} {
  return JSON.parse(line.slice('RESULT '.length)) as ReturnType<typeof resultOf>;
}

const workers: Worker[] = [];
afterEach(() => {
  for (const w of workers.splice(0)) if (w.child.exitCode === null) w.child.kill('SIGKILL');
});

describe.skipIf(!redisUrlForTests())('token refresh across processes on one Redis', () => {
  describe.each(['microsoft', 'google'] as const)('%s flavour', (kind) => {
    let provider: FakeProvider;
    let app: TestApp;
    let serverId: string;
    // The parent's and the workers' clocks run this far ahead of the system clock; moving it expires tokens.
    let clockOffsetMs = 0;
    const workerEnv = (extra: Record<string, string>) => ({
      ...app.env,
      TOKEN_WORKER_GRANT: serverId,
      TOKEN_WORKER_LOCK_MARGIN_MS: String(WORKER_LOCK_MARGIN_MS),
      ...extra,
    });

    beforeAll(async () => {
      provider = await startFakeProvider({ kind, accessTokenTtlSec: 4 });
      app = await startTestApp({ store: 'redis', env: providerEnv(provider), clock: () => Date.now() + clockOffsetMs });
      ({ serverId } = await createOAuthServer(app.services, provider, 2525));
      await authorizeThroughServices(app.services, serverId);
    });
    afterAll(async () => {
      await app?.close();
      await provider?.close();
    });

    /** Moves the clocks just past the stored access token's expiry (workers follow on "go"). */
    async function expireAccessToken() {
      const doc = await app.store.get<GrantRecord>(GRANTS, serverId);
      clockOffsetMs += Math.max(0, doc!.value.tokens.expiresAt - (Date.now() + clockOffsetMs) + 100);
    }

    it('3 processes × 70 concurrent callers at expiry → exactly 1 refresh request', async () => {
      const env = workerEnv({ TOKEN_WORKER_CALLERS: '70' });
      for (let i = 0; i < 3; i++) workers.push(startWorker(env));
      await Promise.all(workers.map((w) => w.waitFor('READY')));
      await expireAccessToken();
      const before = provider.counts.refresh;
      for (const w of workers) w.go(clockOffsetMs);
      const results = (await Promise.all(workers.map((w) => w.waitFor('RESULT')))).map(resultOf);
      expect(provider.counts.refresh - before).toBe(1);
      expect(results.flatMap((r) => r.errors)).toEqual([]);
      expect(new Set(results.flatMap((r) => r.fingerprints)).size).toBe(1);
      expect(results.reduce((n, r) => n + r.stats.refreshRequests, 0)).toBe(1);
      console.info(
        `[figures] ${kind}: 3 processes × 70 callers at expiry → ${provider.counts.refresh - before} refresh request(s)`,
      );
    });

    if (kind === 'microsoft') {
      it('a lock holder frozen (SIGSTOP) past its TTL: another refreshes, the frozen one spends no refresh token, nothing is lost', async () => {
        await expireAccessToken();
        const frozen = startWorker(workerEnv({ TOKEN_WORKER_PAUSE: 'after-lock' }));
        workers.push(frozen);
        await frozen.waitFor('READY');
        const before = provider.counts.refresh;
        frozen.go(clockOffsetMs);
        await frozen.waitFor('LOCKED');
        frozen.child.kill('SIGSTOP');
        // The parent waits on the frozen holder's lock until the store expires it (real time), then refreshes.
        const asked = Date.now();
        const fresh = await app.services.tokens.getAccessToken(serverId);
        expect(Date.now() - asked).toBeGreaterThanOrEqual(WORKER_LOCK_TTL_MS - 1000);
        expect(provider.counts.refresh - before).toBe(1);
        frozen.child.kill('SIGCONT');
        frozen.resume();
        const result = resultOf(await frozen.waitFor('RESULT'));
        expect(result.errors).toEqual([]);
        expect(result.stats.refreshRequests).toBe(0);
        expect(result.stats.lockLost).toBe(1);
        expect(result.fingerprints).toEqual([fresh.accessToken.slice(-8)]);
        // The rotated refresh token survived: the grant still refreshes.
        expect(provider.counts.refreshErrors).toBe(0);
        await app.services.tokens.getAccessToken(serverId, { force: true });
        expect(provider.counts.refreshErrors).toBe(0);
        expect((await app.store.get<GrantRecord>(GRANTS, serverId))?.value.status).toBe('active');
      });
    } else {
      it('a holder frozen after the provider answered: its late write is rejected by the version check, the newer tokens stay', async () => {
        await expireAccessToken();
        const frozen = startWorker(workerEnv({ TOKEN_WORKER_PAUSE: 'after-response' }));
        workers.push(frozen);
        await frozen.waitFor('READY');
        const before = provider.counts.refresh;
        frozen.go(clockOffsetMs);
        await frozen.waitFor('RESPONDED');
        frozen.child.kill('SIGSTOP');
        // The parent waits on the frozen holder's lock until the store expires it (real time), then refreshes.
        const fresh = await app.services.tokens.getAccessToken(serverId);
        const afterParent = await app.store.get<GrantRecord>(GRANTS, serverId);
        frozen.child.kill('SIGCONT');
        frozen.resume();
        const result = resultOf(await frozen.waitFor('RESULT'));
        expect(provider.counts.refresh - before).toBe(2);
        expect(result.stats.staleWritesRejected).toBe(1);
        expect(result.fingerprints).toEqual([fresh.accessToken.slice(-8)]);
        const final = await app.store.get<GrantRecord>(GRANTS, serverId);
        expect(final?.version).toBe(afterParent?.version);
        expect(final?.value.status).toBe('active');
      });
    }
  });
});
