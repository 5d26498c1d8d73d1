/**
 * npm run bench [-- --n 2000 --connections 5 --clients 32]
 *
 * Sends N small messages to a local smtp-server sink (its own process), side by side in one run:
 *   (a) a raw nodemailer pool (the baseline; the only nodemailer import outside src/mail/transport.ts),
 *   (b) the send module (validation, composition, cached pooled transport),
 *   (c) POST /api/v1/messages end to end (HTTP, validation, durable queue, workers) on the embedded file store
 *       and on Redis (a private redis-server started here, or MAILGATE_BENCH_REDIS_URL).
 * Prints messages per second, the ratios b/a and c/a, p50/p99 API latency and peak RSS per phase.
 * Loopback figures vary ±20 % between runs: read the ratios, measured in the same run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import nodemailer from 'nodemailer';
import { oauthRefreshBench } from './oauth-refresh.js';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { Keyring } from '../src/crypto/keyring.js';
import { createLogger } from '../src/log.js';
import { composeMessage, messageInput } from '../src/mail/compose.js';
import { createServices } from '../src/services.js';
import { openStore } from '../src/store/open-store.js';

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '2000' },
    connections: { type: 'string', default: '5' },
    clients: { type: 'string', default: '32' },
    concurrency: { type: 'string', default: '32' },
    rounds: { type: 'string', default: '3' },
  },
});
const N = Number(values.n);
const CONNECTIONS = Number(values.connections);
const CLIENTS = Number(values.clients);
const QUEUE_CONCURRENCY = Number(values.concurrency);
const ROUNDS = Number(values.rounds);

// ------------------------------------------------------------------------------------------ sink

let received = 0;
let waiter: { target: number; resolve: () => void } | null = null;
const sinkProcess = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./sink.ts', import.meta.url))], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
/** Messages the sink reported, plus the requests of the HTTP-ceiling phase (which sends no mail). */
let sinkCount = 0;
let offset = 0;
const sinkPort = await new Promise<number>((resolve) => {
  sinkProcess.on('message', (m: { port?: number; count?: number }) => {
    if (m.port) resolve(m.port);
    if (m.count !== undefined) {
      sinkCount = m.count;
      received = sinkCount + offset;
      if (waiter && received >= waiter.target) {
        waiter.resolve();
        waiter = null;
      }
    }
  });
});

function receivedReaches(target: number): Promise<void> {
  if (received >= target) return Promise.resolve();
  return new Promise((resolve) => (waiter = { target, resolve }));
}

// ------------------------------------------------------------------------------------------ helpers

interface Phase {
  label: string;
  msgsPerSec: number;
  p50?: number;
  p99?: number;
  peakRssMb: number;
  /** CPU time of this process (the one running mailgate or the no-op server) per message, ms. */
  cpuMs: number;
  note?: string;
}

async function measure(label: string, run: () => Promise<{ latencies?: number[]; note?: string }>): Promise<Phase> {
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  const start = received;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const r = await run();
  await receivedReaches(start + N);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  clearInterval(sampler);
  peak = Math.max(peak, process.memoryUsage().rss);
  const phase: Phase = { label, msgsPerSec: N / seconds, peakRssMb: peak / 1024 / 1024, cpuMs: (cpu.user + cpu.system) / 1000 / N };
  if (r.note) phase.note = r.note;
  if (r.latencies?.length) {
    const sorted = [...r.latencies].sort((a, b) => a - b);
    phase.p50 = sorted[Math.floor(sorted.length * 0.5)]!;
    phase.p99 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))]!;
  }
  console.log(`  ${label}: ${phase.msgsPerSec.toFixed(0)} msgs/s${phase.p50 !== undefined ? `, API p50 ${phase.p50.toFixed(1)} ms p99 ${phase.p99!.toFixed(1)} ms` : ''}, CPU ${phase.cpuMs.toFixed(2)} ms/msg, peak RSS ${phase.peakRssMb.toFixed(0)} MB`);
  return phase;
}

const tiny = (i: number) => ({ to: `rcpt${i}@example.net`, subject: `bench ${i}`, text: `message ${i}` });

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function startRedis(): Promise<{ url: string; stop(): Promise<void> } | null> {
  if (process.env.MAILGATE_BENCH_REDIS_URL) return { url: process.env.MAILGATE_BENCH_REDIS_URL, stop: async () => undefined };
  const binary = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((p) => existsSync(p));
  if (!binary) return null;
  const port = await freePort();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-bench-redis-'));
  const proc: ChildProcess = spawn(binary, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => {
        c.end();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      proc.kill('SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
  };
}

// ------------------------------------------------------------------------------------------ (a) raw nodemailer

async function rawNodemailer(): Promise<{ note: string }> {
  const transport = nodemailer.createTransport({ pool: true, host: '127.0.0.1', port: sinkPort, secure: false, maxConnections: CONNECTIONS, maxMessages: Infinity, logger: false });
  await Promise.all(
    Array.from({ length: N }, (_, i) =>
      transport.sendMail({ from: '"Bench (mailgate)" <bench@example.com>', to: tiny(i).to, subject: tiny(i).subject, text: tiny(i).text, html: `<p>${tiny(i).text}</p>`, envelope: { from: 'bench@example.com', to: [tiny(i).to] } }),
    ),
  );
  transport.close();
  return { note: `pool of ${CONNECTIONS}, maxMessages ∞` };
}

// ------------------------------------------------------------------------------------------ app builder for (b) and (c)

async function buildApp(redisUrl: string | null) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-bench-'));
  const config = loadConfig({
    NODE_ENV: 'production',
    MAILGATE_DATA_DIR: dir,
    MAILGATE_ENCRYPTION_KEYS: `b1:${randomBytes(32).toString('base64')}`,
    MAILGATE_SESSION_SECRETS: randomBytes(32).toString('base64url'),
    MAILGATE_LOG_LEVEL: 'warn',
    MAILGATE_WORKERS: 'true',
    MAILGATE_QUEUE_CONCURRENCY: String(QUEUE_CONCURRENCY),
    ...(redisUrl ? { REDIS_URL: redisUrl, MAILGATE_REDIS_PREFIX: `bench:${randomBytes(4).toString('hex')}:` } : {}),
  });
  const log = createLogger({ level: config.MAILGATE_LOG_LEVEL });
  const store = await openStore(config);
  const services = await createServices({ config, store, keyring: new Keyring(config.encryptionKeys ?? []), log, mail: { maxConnections: CONNECTIONS, queue: { pollMs: 50 } } });
  const server = await services.mail.servers.create(
    { name: 'Bench sink', fromAddress: 'bench@example.com', host: '127.0.0.1', port: sinkPort, protocol: 'smtp', isDefault: true },
    { actor: { type: 'system', id: 'bench' } },
  );
  const app = createApp(services);
  const httpServer = http.createServer({ keepAliveTimeout: 30_000 }, app);
  await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(httpServer.address() as net.AddressInfo).port}`;
  const key = (await services.apiKeys.create({ name: 'bench', scopes: ['send'], actor: { type: 'system', id: 'bench' } })).key;
  return {
    services,
    serverId: server.id,
    url,
    key,
    async close() {
      await services.stop();
      httpServer.closeAllConnections();
      await new Promise<void>((r) => httpServer.close(() => r()));
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

// ------------------------------------------------------------------------------------------ (b) send module

async function sendModule(app: Awaited<ReturnType<typeof buildApp>>): Promise<{ note: string }> {
  const server = (await app.services.mail.servers.resolve(app.serverId))!;
  await Promise.all(
    Array.from({ length: N }, (_, i) => {
      const input = messageInput.parse(tiny(i));
      return app.services.mail.transport.send(server, composeMessage(input, server, '{name} (mailgate)'));
    }),
  );
  return { note: 'validate + compose + cached pool' };
}


/** Starts the load generator and waits until it is ready; `go()` starts it and resolves with its latencies. */
async function startClient(url: string, key: string): Promise<{ go(): Promise<number[]> }> {
  const client = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./api-client.ts', import.meta.url)), url, key, String(N), String(CLIENTS)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  client.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => client.once('exit', resolve));
  while (!out.includes('ready\n')) {
    if (client.exitCode !== null) throw new Error('the API client did not start');
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    async go() {
      client.stdin.write('go\n');
      const code = await exited;
      if (code !== 0) throw new Error(`the API client failed (${code})`);
      const line = out.split('\n').find((l) => l.startsWith('{'))!;
      return (JSON.parse(line) as { latencies: number[] }).latencies;
    },
  };
}

// ------------------------------------------------------------------------------------------ (c) HTTP API end to end

async function viaApi(app: Awaited<ReturnType<typeof buildApp>>, client: { go(): Promise<number[]> }): Promise<{ latencies: number[]; note: string }> {
  // The clients run in their own process, as real apps do, so they do not take the server's event loop.
  const latencies = await client.go();
  return { latencies, note: `${CLIENTS} HTTP clients in another process, queue concurrency ${QUEUE_CONCURRENCY}` };
}

// ------------------------------------------------------------------------------------------ (q) queue without HTTP

async function viaQueue(app: Awaited<ReturnType<typeof buildApp>>): Promise<{ note: string }> {
  // Starts the workers; the (c) phase that follows on the same app uses them too.
  await app.services.start();
  let next = 0;
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      for (let i = next++; i < N; i = next++) await app.services.mail.queue.enqueue(messageInput.parse(tiny(i)));
    }),
  );
  return { note: 'in-process enqueue, durable queue, workers' };
}

// ------------------------------------------------------------------------------------------ (h) HTTP ceiling

/** The same client against a server that answers 202 and does nothing: the machine's loopback HTTP limit. */
async function startTrivialServer(): Promise<{ url: string; close(): Promise<void> }> {
  const trivial = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(202, { 'content-type': 'application/json' });
      res.end('{"id":"x","status":"queued"}');
    });
  });
  await new Promise<void>((r) => trivial.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(trivial.address() as net.AddressInfo).port}`,
    async close() {
      trivial.closeAllConnections();
      await new Promise<void>((r) => trivial.close(() => r()));
    },
  };
}

async function httpCeiling(client: { go(): Promise<number[]> }): Promise<{ latencies: number[]; note: string }> {
  const latencies = await client.go();
  // Nothing reaches the sink here: count the requests as the messages of this phase.
  offset += N;
  received = sinkCount + offset;
  return { latencies, note: 'no mail sent' };
}

// ------------------------------------------------------------------------------------------ run

console.log(`mailgate bench: ${N} messages per phase, sink 127.0.0.1:${sinkPort}, Node ${process.version}, ${os.cpus().length} CPUs`);
// Warm-up (JIT, first connections) so the first measured phase is not penalised.
{
  const warm = received;
  const t = nodemailer.createTransport({ pool: true, host: '127.0.0.1', port: sinkPort, maxConnections: CONNECTIONS, maxMessages: Infinity });
  await Promise.all(Array.from({ length: N }, (_, i) => t.sendMail({ from: 'w@example.com', to: `w${i}@example.net`, subject: 'w', text: 'w', html: '<p>w</p>' })));
  t.close();
  await receivedReaches(warm + N);
}

// Several rounds, each phase once per round; the medians are reported (the machine's load varies a lot).
const rounds: Phase[][] = [];
for (let round = 1; round <= ROUNDS; round++) {
  console.log(`round ${round} of ${ROUNDS}`);
  const phases: Phase[] = [];
  phases.push(await measure('(a) raw nodemailer pool', rawNodemailer));

  const fileApp = await buildApp(null);
  phases.push(await measure('(b) send module', () => sendModule(fileApp)));
  phases.push(await measure('(q) queue only, file store', () => viaQueue(fileApp)));
  const fileClient = await startClient(fileApp.url, fileApp.key);
  phases.push(await measure('(c) POST /api/v1/messages, file store', () => viaApi(fileApp, fileClient)));
  await fileApp.close();

  const redis = await startRedis();
  if (redis) {
    const redisApp = await buildApp(redis.url);
    phases.push(await measure('(q) queue only, Redis', () => viaQueue(redisApp)));
    const redisClient = await startClient(redisApp.url, redisApp.key);
    phases.push(await measure('(c) POST /api/v1/messages, Redis', () => viaApi(redisApp, redisClient)));
    await redisApp.close();
    await redis.stop();
  } else {
    console.log('  Redis phases skipped: no redis-server found (apt-get install redis-server, or set MAILGATE_BENCH_REDIS_URL)');
  }
  const trivial = await startTrivialServer();
  const trivialClient = await startClient(trivial.url, 'none');
  phases.push(await measure('(h) HTTP ceiling: 202 from a no-op server', () => httpCeiling(trivialClient)));
  await trivial.close();
  phases.push(await measure('(a) raw nodemailer pool, again', rawNodemailer));
  rounds.push(phases);
}
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
const phases: Phase[] = rounds[0]!.map((p, i) => {
  const all = rounds.map((r) => r[i]!);
  const m: Phase = { label: p.label, msgsPerSec: median(all.map((x) => x.msgsPerSec)), peakRssMb: Math.max(...all.map((x) => x.peakRssMb)), cpuMs: median(all.map((x) => x.cpuMs)) };
  if (p.p50 !== undefined) {
    m.p50 = median(all.map((x) => x.p50!));
    m.p99 = median(all.map((x) => x.p99!));
  }
  return m;
});
console.log(`\nmedians of ${ROUNDS} round(s), peak RSS = max of the mailgate process (the sink and the HTTP clients run in their own processes)`);
const baseline = (phases[0]!.msgsPerSec + phases.at(-1)!.msgsPerSec) / 2;
console.log('\nphase                                        msgs/s   ratio   p50 ms   p99 ms   CPU ms/msg   peak RSS MB');
for (const p of phases) {
  console.log(
    `${p.label.padEnd(44)} ${p.msgsPerSec.toFixed(0).padStart(6)}   ${(p.msgsPerSec / baseline).toFixed(2).padStart(5)}   ${p.p50 === undefined ? '     -' : p.p50.toFixed(1).padStart(6)}   ${p.p99 === undefined ? '     -' : p.p99.toFixed(1).padStart(6)}   ${p.cpuMs.toFixed(2).padStart(10)}   ${p.peakRssMb.toFixed(0).padStart(5)}`,
  );
}
console.log(`\nratios against the mean of the two raw runs (${baseline.toFixed(0)} msgs/s): b/a = ${(phases[1]!.msgsPerSec / baseline).toFixed(2)} (target ≥ 0.95), c/a = ${phases
  .filter((p) => p.label.startsWith('(c)'))
  .map((p) => `${(p.msgsPerSec / baseline).toFixed(2)} ${p.label.includes('Redis') ? 'Redis' : 'file'}`)
  .join(', ')} (target ≥ 0.70)`);
const ceiling = phases.find((p) => p.label.startsWith('(h)'));
if (ceiling) {
  console.log(`loopback HTTP ceiling of this machine with the same client: ${ceiling.msgsPerSec.toFixed(0)} req/s = ${(ceiling.msgsPerSec / baseline).toFixed(2)} of a; c/h = ${phases
    .filter((p) => p.label.startsWith('(c)'))
    .map((p) => `${(p.msgsPerSec / ceiling.msgsPerSec).toFixed(2)} ${p.label.includes('Redis') ? 'Redis' : 'file'}`)
    .join(', ')}`);
}
{
  // The server side of (c) does at least what (a) does (nodemailer) plus what (h) does (HTTP), in one process.
  const cpuA = (phases[0]!.cpuMs + phases.at(-1)!.cpuMs) / 2;
  const cpuH = ceiling?.cpuMs ?? 0;
  console.log(`CPU of the serving process per message: (a) ${cpuA.toFixed(2)} ms + (h) ${cpuH.toFixed(2)} ms = ${(cpuA + cpuH).toFixed(2)} ms before any queue work; (c) ${phases
    .filter((p) => p.label.startsWith('(c)'))
    .map((p) => `${p.cpuMs.toFixed(2)} ms ${p.label.includes('Redis') ? 'Redis' : 'file'}`)
    .join(', ')}`);
}
// OAuth token refresh counts (bench/oauth-refresh.ts).
await oauthRefreshBench();
sinkProcess.disconnect();
process.exit(0);
