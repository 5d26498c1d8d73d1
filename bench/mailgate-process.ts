/**
 * One mailgate instance for bench/run.ts in its own process, so the CPU time and the peak RSS the bench prints
 * for mailgate are mailgate's alone (not the raw pool's, the minimal front's or the bench's own bookkeeping).
 * Started with the sink port, the connections, the queue concurrency, MAILGATE_FSYNC and, for Redis, its URL and
 * key prefix; reports `{ ready: { url, key, serverId } }` over IPC, then runs the commands bench/instances.ts sends:
 * `start` (the workers), `send-module` and `enqueue` (phases (b) and (q), in this process), `stop-queue`, `close`.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import path from 'node:path';
import { createRequestListener } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { Keyring } from '../src/crypto/keyring.js';
import { createLogger } from '../src/log.js';
import { composeMessage, messageInput } from '../src/mail/compose.js';
import { createServices } from '../src/services.js';
import { openStore } from '../src/store/open-store.js';

export interface InstanceOptions {
  sinkPort: number;
  connections: number;
  concurrency: number;
  fsync: 'always' | 'off';
  redisUrl: string | null;
  redisPrefix: string | null;
  /** More settings (e.g. MAILGATE_SUBMISSION_PORT for the SMTP front's phase). */
  env: Record<string, string>;
  /** A second instance on the same Redis reuses the first one's server and key instead of creating its own. */
  join: { serverId: string; key: string; encryptionKeys: string; sessionSecrets: string } | null;
}

export type Command =
  | { cmd: 'start' }
  | { cmd: 'send-module'; n: number; concurrency?: number }
  | { cmd: 'enqueue'; n: number; clients: number }
  | { cmd: 'stop-queue' }
  /** Starts the SMTP submission front; answers its port. */
  | { cmd: 'submission-start' }
  /** Answers the worst event-loop delay since the last `stall` (or the start), in ms, and starts over. */
  | { cmd: 'stall' }
  /**
   * Answers the most CPU time the main thread spent between two ticks of a 10 ms timer since the last `cpu-stall`,
   * in ms (to 10 ms): the longest synchronous step as the CPU counts it, which a loaded machine does not stretch
   * (the event-loop delay also counts the time the process waited for a core).
   */
  | { cmd: 'cpu-stall' }
  | { cmd: 'close' };

const tiny = (i: number) => ({ to: `rcpt${i}@example.net`, subject: `bench ${i}`, text: `message ${i}` });

const options = JSON.parse(process.argv[2]!) as InstanceOptions;
const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-bench-'));
const encryptionKeys = options.join?.encryptionKeys ?? `b1:${randomBytes(32).toString('base64')}`;
const sessionSecrets = options.join?.sessionSecrets ?? randomBytes(32).toString('base64url');
const config = loadConfig({
  NODE_ENV: 'production',
  MAILGATE_DATA_DIR: dir,
  MAILGATE_ENCRYPTION_KEYS: encryptionKeys,
  MAILGATE_SESSION_SECRETS: sessionSecrets,
  MAILGATE_LOG_LEVEL: 'warn',
  MAILGATE_WORKERS: 'true',
  MAILGATE_QUEUE_CONCURRENCY: String(options.concurrency),
  MAILGATE_FSYNC: options.fsync,
  // The sink listens on loopback, which production settings refuse unless allowed.
  MAILGATE_EGRESS_ALLOW: '127.0.0.1',
  ...(options.redisUrl ? { REDIS_URL: options.redisUrl, MAILGATE_REDIS_PREFIX: options.redisPrefix! } : {}),
  ...options.env,
});
const log = createLogger({ level: config.MAILGATE_LOG_LEVEL });
const store = await openStore(config);
const services = await createServices({
  config,
  store,
  keyring: new Keyring(config.encryptionKeys ?? []),
  log,
  mail: { maxConnections: options.connections, queue: { pollMs: 50 } },
});
const actor = { type: 'system', id: 'bench' } as const;
const serverId =
  options.join?.serverId ??
  (
    await services.mail.servers.create(
      {
        name: 'Bench sink',
        fromAddress: 'bench@example.com',
        host: '127.0.0.1',
        port: options.sinkPort,
        protocol: 'smtp',
        isDefault: true,
      },
      { actor },
    )
  ).id;
const key = options.join?.key ?? (await services.apiKeys.create({ name: 'bench', scopes: ['send'], actor })).key;
const httpServer = http.createServer({ keepAliveTimeout: 30_000 }, createRequestListener(services));
await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', r));
const url = `http://127.0.0.1:${(httpServer.address() as net.AddressInfo).port}`;

// A 10 ms resolution: a 1 ms timer would cost this process measurable CPU, and a stall worth reporting is longer.
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();

/**
 * CPU time of the main thread alone, in ms (Linux, in clock ticks of 10 ms): not V8's helper threads nor libuv's
 * pool, which process.cpuUsage() would add.
 */
function mainThreadCpuMs(): number {
  try {
    const fields = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    const usage = process.cpuUsage();
    return (usage.user + usage.system) / 1000;
  }
}
let cpuAtTick = mainThreadCpuMs();
let maxCpuBetweenTicks = 0;
setInterval(() => {
  const now = mainThreadCpuMs();
  maxCpuBetweenTicks = Math.max(maxCpuBetweenTicks, now - cpuAtTick);
  cpuAtTick = now;
}, 10).unref();

async function run(command: Command): Promise<unknown> {
  switch (command.cmd) {
    case 'stall': {
      const max = loopDelay.max / 1e6;
      loopDelay.reset();
      return max;
    }
    case 'cpu-stall': {
      const max = maxCpuBetweenTicks;
      maxCpuBetweenTicks = 0;
      return max;
    }
    case 'start':
      await services.start();
      return;
    case 'send-module': {
      const server = (await services.mail.servers.resolve(serverId))!;
      const send = (i: number) =>
        services.mail.transport.send(server, composeMessage(messageInput.parse(tiny(i)), server, '{name} (mailgate)'));
      // All at once for phase (b); a few at a time for a warm-up, whose memory would otherwise stay in the peak RSS.
      const lanes = command.concurrency ?? command.n;
      let next = 0;
      await Promise.all(
        Array.from({ length: Math.min(lanes, command.n) }, async () => {
          for (let i = next++; i < command.n; i = next++) await send(i);
        }),
      );
      return;
    }
    case 'enqueue': {
      let next = 0;
      await Promise.all(
        Array.from({ length: command.clients }, async () => {
          for (let i = next++; i < command.n; i = next++)
            await services.mail.queue.enqueue(messageInput.parse(tiny(i)));
        }),
      );
      return;
    }
    case 'submission-start':
      return services.submission.start();
    case 'stop-queue':
      await services.mail.queue.stop();
      return;
    case 'close':
      await services.stop();
      httpServer.closeAllConnections();
      await new Promise<void>((r) => httpServer.close(() => r()));
      await store.close();
      await rm(dir, { recursive: true, force: true });
      process.send!({ done: 'close' }, () => process.exit(0));
      return;
  }
}

process.on('message', (command: Command) => {
  run(command).then(
    (value) => command.cmd !== 'close' && process.send!({ done: command.cmd, value }),
    (err: unknown) => process.send!({ failed: command.cmd, error: String(err) }),
  );
});
process.on('disconnect', () => process.exit(0));
process.send!({ ready: { url, key, serverId, encryptionKeys, sessionSecrets } });
