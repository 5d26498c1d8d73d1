/**
 * npm run bench:scale [-- --n 1000,10000,100000 --backends redis,embedded --concurrency 200]
 *
 * Seeds N mailboxes and measures one instance over them. Per mailbox: an SMTP server (oauth2) and its grant with
 * realistic sealed tokens (a 2 KB access token, a 1 KB refresh token); per 100 mailboxes an OAuth integration;
 * per 1,000 an API key; per 10 a queued message (held: sending is disabled, so nothing leaves the machine).
 * Integrations, API keys, the admin and the messages go through the services; servers and grants are written
 * straight to the store with the documents and index moves the services write (src/mail/servers/service.ts,
 * src/tokens/authorize.ts), because going through Authorize 100,000 times needs a provider and hours.
 *
 * Then an instance starts in a process of its own (bench/scale-instance.mjs, with the Node flags of `npm start`) and
 * the bench prints: start-up time to
 * ready, RSS after start and after an hour of simulated scheduler time (injected clock), /readyz p50/p99,
 * POST /api/v1/messages p99, the first and p99 latency of each admin page, Redis memory per mailbox (INFO memory,
 * before and after seeding) and the scheduler's CPU per simulated hour. Redis is a private redis-server.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { HttpSession } from '../test/fakes/app.js';
import { onPath } from '../test/fakes/binaries.js';
import { freePort } from '../test/fakes/net.js';
import { spawnRedisServer } from '../test/fakes/redis-server.js';
import { loadConfig, type Config } from '../src/config.js';
import { Keyring } from '../src/crypto/keyring.js';
import { createLogger } from '../src/log.js';
import { messageInput } from '../src/mail/compose.js';
import { SERVERS, type SmtpServerDoc } from '../src/mail/servers/model.js';
import { createServices } from '../src/services.js';
import { openStore } from '../src/store/open-store.js';
import { grantIndexChanges } from '../src/tokens/grant-index.js';
import { GRANTS, sealToken, type GrantRecord } from '../src/tokens/grants.js';
import { refreshDueAt } from '../src/tokens/refresh-policy.js';
import { REFRESH_QUEUE } from '../src/tokens/scheduler.js';
import { startNodeFlags } from './start-flags.js';

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '1000,10000,100000' },
    backends: { type: 'string', default: 'redis,embedded' },
    concurrency: { type: 'string', default: '200' },
  },
});
const SIZES = values.n.split(',').map(Number);
const CONCURRENCY = Number(values.concurrency);
const ADMIN = { email: 'bench@example.com', password: 'bench-password-0123456789' };
const here = path.dirname(fileURLToPath(import.meta.url));
const log = (line: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);

function pct(samples: number[], p: number): number {
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}
const ms = (v: number) => `${v.toFixed(1)} ms`;
const mb = (v: number) => `${(v / 1048576).toFixed(0)} MB`;

async function inBatches(n: number, work: (i: number) => Promise<unknown>, label: string): Promise<void> {
  const started = performance.now();
  let next = 0;
  let done = 0;
  let shown = 0;
  await Promise.all(
    Array.from({ length: Math.min(CONCURRENCY, n) }, async () => {
      while (next < n) {
        await work(next++);
        done++;
        if (done - shown >= Math.max(1000, n / 10)) {
          shown = done;
          log(`  ${label}: ${done}/${n}`);
        }
      }
    }),
  );
  log(`  ${label}: ${n} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

async function seed(config: Config, n: number): Promise<{ apiKey: string; serverId: string }> {
  const store = await openStore(config);
  const keyring = new Keyring(config.encryptionKeys ?? []);
  const services = await createServices({ config, store, keyring, log: createLogger({ level: 'warn' }) });
  // As on an installation that has run before: start-up's one-time work (index markers) is done.
  await services.start();
  const actor = { type: 'system' as const, id: 'bench' };
  await services.users.create({ ...ADMIN, role: 'sysadmin' });
  const integrations: string[] = [];
  await inBatches(
    Math.max(1, Math.ceil(n / 100)),
    async (i) => {
      const doc = await services.oauthIntegrations.create(
        {
          name: `Tenant ${i}`,
          provider: 'microsoft',
          tenant: `tenant${i}.onmicrosoft.com`,
          clientId: randomBytes(16).toString('hex'),
          clientSecret: randomBytes(24).toString('base64url'),
        },
        actor,
      );
      integrations[i] = doc.id;
    },
    'integrations',
  );
  const now = Date.now();
  const serverIds: string[] = [];
  await inBatches(
    n,
    async (i) => {
      const id = `srv_bench${String(i).padStart(7, '0')}`;
      serverIds[i] = id;
      const mailbox = `user${i}@tenant${Math.floor(i / 100)}.example.com`;
      const server: SmtpServerDoc = {
        name: `Mailbox ${i}`,
        description: null,
        fromAddress: mailbox,
        emailPrefix: null,
        serviceProvider: 'microsoft',
        protocol: 'smtp',
        host: 'smtp.office365.com',
        port: 587,
        timeoutMs: null,
        rateLimitPerMinute: 30,
        tls: true,
        authMethod: 'oauth2',
        oauthIntegrationId: integrations[Math.floor(i / 100)]!,
        username: null,
        password: null,
        passwordVersion: 1,
        createdAt: new Date(now).toISOString(),
        updatedAt: new Date(now).toISOString(),
      };
      await store.put(SERVERS, id, server, { ifVersion: 0 });
      // No token falls due within the simulated hour: the hour measures the scheduler's own cost (the cost of a
      // refresh itself is bench/oauth-refresh.ts's).
      const expiresAt = now + 3 * 3_600_000 + Math.floor(Math.random() * 3 * 3_600_000);
      const grant: GrantRecord = {
        serverId: id,
        integrationId: server.oauthIntegrationId!,
        mailbox,
        subject: randomBytes(16).toString('hex'),
        scope: 'https://outlook.office.com/SMTP.Send offline_access openid email',
        status: 'active',
        tokens: {
          accessToken: sealToken(keyring, id, 'accessToken', randomBytes(1536).toString('base64url')),
          refreshToken: sealToken(keyring, id, 'refreshToken', randomBytes(768).toString('base64url')),
          expiresAt,
          obtainedAt: now,
        },
        lastRefreshAt: null,
        lastError: null,
        failures: 0,
        retryAt: null,
        authorizedAt: now,
        authorizedBy: ADMIN.email,
      };
      const indexes = grantIndexChanges(null, grant, now);
      await store.put(GRANTS, id, grant, {
        ifVersion: 0,
        count: indexes.count,
        schedule: [...indexes.schedule, { queue: REFRESH_QUEUE, dueAt: refreshDueAt(grant) }],
      });
    },
    'mailboxes',
  );
  let apiKey = '';
  await inBatches(
    Math.max(1, Math.ceil(n / 1000)),
    async (i) => {
      const created = await services.apiKeys.create({ name: `app ${i}`, scopes: ['send', 'admin'], actor });
      if (i === 0) apiKey = created.key;
    },
    'api keys',
  );
  const input = messageInput.parse({ to: 'customer@example.net', subject: 'Your ticket was updated', text: 'x' });
  await inBatches(
    Math.max(1, Math.ceil(n / 10)),
    (i) => services.mail.queue.enqueue({ ...input, serverId: serverIds[(i * 7) % n]! }),
    'messages',
  );
  await services.stop();
  await store.close();
  return { apiKey, serverId: serverIds[0]! };
}

function startInstance(env: Record<string, string>): {
  child: ChildProcess;
  next: (event: string) => Promise<Record<string, number>>;
} {
  const child = spawn(process.execPath, [...startNodeFlags(), path.join(here, 'scale-instance.mjs')], {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const waiting = new Map<string, (v: Record<string, number>) => void>();
  const seen = new Map<string, Record<string, number>>();
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    try {
      const o = JSON.parse(line) as Record<string, number> & { event: string };
      seen.set(o.event, o);
      waiting.get(o.event)?.(o);
    } catch {
      process.stdout.write(`  [instance] ${line}\n`);
    }
  });
  const next = (event: string) =>
    new Promise<Record<string, number>>((resolve, reject) => {
      const had = seen.get(event);
      if (had) return resolve(had);
      waiting.set(event, resolve);
      child.once('exit', (code) => reject(new Error(`instance exited (${code}) before ${event}`)));
    });
  return { child, next };
}

async function timed(times: number, fn: () => Promise<Response>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < times; i++) {
    const t = performance.now();
    const res = await fn();
    await res.arrayBuffer();
    if (res.status >= 400) throw new Error(`HTTP ${res.status} after ${ms(performance.now() - t)}`);
    out.push(performance.now() - t);
  }
  return out;
}

async function runOne(backend: 'redis' | 'embedded', n: number, redisBinary: string | null): Promise<void> {
  log(`== ${backend}, ${n} mailboxes`);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-scale-'));
  let redis: ChildProcess | null = null;
  let redisUrl: string | null = null;
  try {
    if (backend === 'redis') {
      const port = await freePort();
      redis = await spawnRedisServer(redisBinary!, port, dataDir, ['--maxmemory-policy', 'noeviction']);
      redisUrl = `redis://127.0.0.1:${port}`;
    }
    const env: Record<string, string> = {
      NODE_ENV: 'production',
      MAILGATE_DATA_DIR: dataDir,
      MAILGATE_ENCRYPTION_KEYS: `b1:${randomBytes(32).toString('base64')}`,
      MAILGATE_SESSION_SECRETS: randomBytes(32).toString('base64url'),
      MAILGATE_SEND_DISABLED: 'true',
      MAILGATE_LOG_LEVEL: 'warn',
      MAILGATE_QUEUE_MAX_MESSAGES: String(Math.max(100_000, n)),
      ...(redisUrl ? { REDIS_URL: redisUrl } : {}),
    };
    const client = redisUrl ? new Redis(redisUrl) : null;
    const usedMemory = async () => Number(/used_memory:(\d+)/.exec((await client!.info('memory')) ?? '')?.[1] ?? 0);
    const memBefore = client ? await usedMemory() : 0;
    const { apiKey, serverId } = await seed(loadConfig(env), n);
    const memAfter = client ? await usedMemory() : 0;
    await client?.quit();

    const spawned = performance.now();
    const { child, next } = startInstance(env);
    const ready = await next('ready');
    const readyWall = performance.now() - spawned;
    log(`-- ${backend}, ${n} mailboxes`);
    log(
      `  ready ${ms(readyWall)} after the process was started (${ms(ready.readyMs!)} after its modules loaded); ` +
        `RSS ${mb(ready.rss!)} (heap ${mb(ready.heap!)})`,
    );
    if (client) log(`  Redis: ${((memAfter - memBefore) / n / 1024).toFixed(2)} KB per mailbox (${mb(memAfter)} used)`);
    const base = `http://127.0.0.1:${ready.port}`;
    // A few requests first, as a load balancer's first probes would: the JIT is cold right after start.
    await timed(20, () => fetch(`${base}/readyz`));
    const readyz = await timed(200, () => fetch(`${base}/readyz`));
    log(`  /readyz p50 ${ms(pct(readyz, 50))}, p99 ${ms(pct(readyz, 99))}`);
    const body = JSON.stringify({ serverId, to: 'customer@example.net', subject: 'bench', text: 'hello' });
    const post = await timed(200, () =>
      fetch(`${base}/api/v1/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
        body,
      }),
    );
    log(`  POST /api/v1/messages p50 ${ms(pct(post, 50))}, p99 ${ms(pct(post, 99))}`);
    const session = new HttpSession(base);
    await session.login(ADMIN.email, ADMIN.password);
    for (const page of [
      '/admin/smtp-servers',
      '/admin/oauth-integrations',
      '/admin/mail-queue',
      '/admin/api-keys',
      '/admin/audit',
      '/admin/notifications',
      `/admin/smtp-servers/${serverId}`,
    ]) {
      try {
        const first = await timed(1, () => session.fetch(page));
        const rest = await timed(5, () => session.fetch(page));
        log(`  ${page} first ${ms(first[0]!)}, p99 ${ms(pct(rest, 99))}`);
      } catch (err) {
        log(`  ${page} failed: ${(err as Error).message}`);
      }
    }
    child.stdin!.write('hour\n');
    const hour = await next('hour');
    child.stdin!.write('exit\n');
    await new Promise((r) => child.once('exit', r));
    log(`  after a simulated hour: RSS ${mb(hour.rss!)} (heap ${mb(hour.heap!)})`);
    log(
      `  scheduler: ${ms(hour.cpuMs!)} CPU per simulated hour (${hour.refreshed} refreshes due, ${ms(hour.wallMs!)} wall)`,
    );
  } finally {
    redis?.kill('SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
  }
}

log('building (the instance runs from dist/, as npm start does)');
execFileSync('npm', ['run', '-s', 'build'], { cwd: path.join(here, '..'), stdio: 'inherit' });
const redisBinary = onPath('redis-server');
for (const backend of values.backends.split(',') as Array<'redis' | 'embedded'>) {
  if (backend === 'redis' && !redisBinary) {
    log('redis-server not found on PATH: Redis runs skipped');
    continue;
  }
  for (const n of SIZES) {
    // The embedded store is for one small installation: 100,000 mailboxes is a Redis deployment.
    if (backend === 'embedded' && n > 10_000) continue;
    await runOne(backend, n, redisBinary);
  }
}
