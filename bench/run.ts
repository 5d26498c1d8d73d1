/**
 * npm run bench [-- --n 2000 --rounds 3 --warmup 1 --connections 5 --clients 32 --concurrency 32 --only smtp]
 *
 * Sends N small messages to a local smtp-server sink (its own process), side by side in one run:
 *   (a) a raw nodemailer pool (the baseline; the only nodemailer import outside src/mail/transport.ts),
 *   (b) the send module (validation, composition, cached pooled transport),
 *   (m) a minimal HTTP server that hands each request straight to the raw pool (no API key, no validation,
 *       nothing stored): the most any HTTP-fronted sender can reach on this machine with this client,
 *   (c) POST /api/v1/messages end to end (HTTP, validation, durable queue, workers) on the embedded file store
 *       and on Redis (a private redis-server started here, or MAILGATE_BENCH_REDIS_URL),
 * plus (q) the queue without HTTP and (h) the client against a server that only answers 202.
 * Every phase runs once per warm-up round first (not counted): a cold JIT halves nodemailer's throughput.
 * Prints messages per second, the ratios, p50/p99 API latency, peak RSS, and the CPU time per message of every
 * process in the run (mailgate, sink, client, Redis), because they share the machine's cores. Then the worst
 * event-loop stall: over the throughput rounds, and for HTML-only messages with crafted bodies of up to
 * --html-chars characters (bench/html-stall.ts), and for JSON bodies of 1, 5 and 25 MB with the peak RSS
 * (bench/json-stall.ts; `--only intake` runs these alone, --rounds times).
 * (s0)/(s): the same SMTP client straight to the sink, then through mailgate's submission front (bench/smtp-front.ts).
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import nodemailer from 'nodemailer';
import { craftedBodies, htmlStall, printHtmlStall } from './html-stall.js';
import { intakeStall, printIntakeStall } from './json-stall.js';
import { oauthRefreshBench } from './oauth-refresh.js';
import { cpuLine, startSmtpClient } from './smtp-front.js';
import { commandsBetween, commandStats } from '../test/fakes/redis-commands.js';
import { onPath } from '../test/fakes/binaries.js';
import { freePort } from '../test/fakes/net.js';
import { spawnRedisServer } from '../test/fakes/redis-server.js';
import type { Command, InstanceOptions } from './mailgate-process.js';
import { startNodeFlags } from './start-flags.js';

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '2000' },
    connections: { type: 'string', default: '5' },
    clients: { type: 'string', default: '32' },
    concurrency: { type: 'string', default: '32' },
    rounds: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    'html-chars': { type: 'string', default: '1000000' },
    only: { type: 'string' },
    against: { type: 'string' },
  },
});
const N = Number(values.n);
const CONNECTIONS = Number(values.connections);
const CLIENTS = Number(values.clients);
const QUEUE_CONCURRENCY = Number(values.concurrency);
const ROUNDS = Number(values.rounds);
const WARMUP_ROUNDS = Number(values.warmup);
const HTML_CHARS = Number(values['html-chars']);
/** mailgate's own CPU per message that the queue's design is held to (with MAILGATE_FSYNC=always on the file store). */
const CPU_TARGETS = '≤ 0.8 ms file store, ≤ 1.0 ms Redis summed over two instances';

// ------------------------------------------------------------------------------------------ mailgate, compiled

/**
 * mailgate runs compiled (tsconfig.bench.json: src plus bench/mailgate-process.ts), as `npm start` runs it. Under
 * tsx its process held about 40 MB more (the loader's thread) and spent CPU in the loader's hooks.
 * MAILGATE_BENCH_TSX=1 runs the sources under tsx instead.
 */
const root = fileURLToPath(new URL('..', import.meta.url));
const useTsx = process.env.MAILGATE_BENCH_TSX === '1';
if (!useTsx) {
  console.log('compiling mailgate for the bench (tsc -p tsconfig.bench.json)…');
  const tsc = spawnSync(
    process.execPath,
    [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.bench.json'],
    {
      cwd: root,
      stdio: 'inherit',
    },
  );
  if (tsc.status !== 0) throw new Error('tsc -p tsconfig.bench.json failed');
}
const instanceArgs = useTsx
  ? ['--import', 'tsx', fileURLToPath(new URL('./mailgate-process.ts', import.meta.url))]
  : [path.join(root, 'dist/bench/bench/mailgate-process.js')];

// ------------------------------------------------------------------------------------------ sink

let received = 0;
let waiter: { target: number; resolve: () => void } | null = null;
const sinkProcess = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./sink.ts', import.meta.url))], {
  stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
});
/** Messages the sink reported, plus the requests of the HTTP-ceiling phase (which sends no mail). */
let sinkCount = 0;
/** CPU time (ms) the sink process has used, as of its last report. */
let sinkCpuMs = 0;
let offset = 0;
const sinkPort = await new Promise<number>((resolve) => {
  sinkProcess.on('message', (m: { port?: number; count?: number; cpuMs?: number }) => {
    if (m.port) resolve(m.port);
    if (m.cpuMs !== undefined) sinkCpuMs = m.cpuMs;
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
  /** CPU time of this process (the one running mailgate, the raw pool or the minimal servers) per message, ms. */
  cpuMs: number;
  /** CPU time per message of every process in the run: this one, the sink, the HTTP client, Redis. */
  machineCpuMs: number;
  /** CPU time per message of each process (mailgate, sink, client, redis), ms. */
  parts?: Record<string, number>;
  note?: string;
}

/** What a phase reports besides its own timing: latencies and CPU time of the client and of Redis. */
interface PhaseResult {
  latencies?: number[];
  clientCpuMs?: number;
  note?: string;
}

/** CPU time (ms) of another process, from /proc (Linux); 0 where it cannot be read. */
function processCpuMs(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    // Fields 14 and 15 (utime, stime) in clock ticks, counted after the ")" that ends the command name.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * (1000 / 100);
  } catch {
    return 0;
  }
}

/** Resident set size of another process, in bytes, from /proc (Linux); 0 where it cannot be read. */
function processRss(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** The Redis server whose CPU is charged to the phases that use it (only one started here has a pid). */
let redisPid: number | undefined;

/**
 * `pids`: the mailgate processes of the phase, whose CPU (summed) and RSS (the largest) are the phase's own;
 * without them, this process's (the raw pool, the minimal fronts).
 */
async function measure(label: string, run: () => Promise<PhaseResult>, quiet = false, pids?: number[]): Promise<Phase> {
  const rss = () => (pids ? Math.max(...pids.map(processRss)) : process.memoryUsage.rss());
  const cpuNow = () => {
    if (pids) return pids.reduce((sum, pid) => sum + processCpuMs(pid), 0);
    const c = process.cpuUsage();
    return (c.user + c.system) / 1000;
  };
  let peak = rss();
  // Every 100 ms: reading the RSS costs about half a millisecond, and at every 20 ms it was 2 % of the CPU the
  // phase charged to mailgate. The heap grows and shrinks over hundreds of milliseconds, so the peak is still seen.
  const sampler = setInterval(() => (peak = Math.max(peak, rss())), 100);
  const start = received;
  const cpu0 = cpuNow();
  const sink0 = sinkCpuMs;
  const redis0 = processCpuMs(redisPid);
  const t0 = performance.now();
  const r = await run();
  await receivedReaches(start + N);
  const seconds = (performance.now() - t0) / 1000;
  const own = cpuNow() - cpu0;
  clearInterval(sampler);
  peak = Math.max(peak, rss());
  const others = sinkCpuMs - sink0 + (r.clientCpuMs ?? 0) + (processCpuMs(redisPid) - redis0);
  const phase: Phase = {
    label,
    msgsPerSec: N / seconds,
    peakRssMb: peak / 1024 / 1024,
    cpuMs: own / N,
    machineCpuMs: (own + others) / N,
    parts: {
      mailgate: own / N,
      sink: (sinkCpuMs - sink0) / N,
      client: (r.clientCpuMs ?? 0) / N,
      redis: (processCpuMs(redisPid) - redis0) / N,
    },
  };
  if (r.note) phase.note = r.note;
  if (r.latencies?.length) {
    const sorted = [...r.latencies].sort((a, b) => a - b);
    phase.p50 = sorted[Math.floor(sorted.length * 0.5)]!;
    phase.p99 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))]!;
  }
  if (!quiet) {
    console.log(
      `  ${label}: ${phase.msgsPerSec.toFixed(0)} msgs/s${phase.p50 !== undefined ? `, API p50 ${phase.p50.toFixed(1)} ms p99 ${phase.p99!.toFixed(1)} ms` : ''}, CPU ${phase.cpuMs.toFixed(2)} ms/msg (all processes ${phase.machineCpuMs.toFixed(2)}), peak RSS ${phase.peakRssMb.toFixed(0)} MB`,
    );
  }
  return phase;
}

const tiny = (i: number) => ({ to: `rcpt${i}@example.net`, subject: `bench ${i}`, text: `message ${i}` });

async function startRedis(): Promise<{ url: string; stop(): Promise<void> } | null> {
  if (process.env.MAILGATE_BENCH_REDIS_URL)
    return { url: process.env.MAILGATE_BENCH_REDIS_URL, stop: async () => undefined };
  const binary = onPath('redis-server');
  if (!binary) return null;
  const port = await freePort();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-bench-redis-'));
  const proc = await spawnRedisServer(binary, port, dir);
  redisPid = proc.pid;
  return {
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      redisPid = undefined;
      proc.kill('SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
  };
}

// ------------------------------------------------------------------------------------------ (a) raw nodemailer

function rawPool() {
  return nodemailer.createTransport({
    pool: true,
    host: '127.0.0.1',
    port: sinkPort,
    secure: false,
    maxConnections: CONNECTIONS,
    maxMessages: Infinity,
    logger: false,
  });
}

/** The message (a) sends for a request body: what the send module would build, without its checks. */
function rawMail(m: { to: string; subject: string; text: string }) {
  return {
    from: '"Bench (mailgate)" <bench@example.com>',
    to: m.to,
    subject: m.subject,
    text: m.text,
    html: `<p>${m.text}</p>`,
    envelope: { from: 'bench@example.com', to: [m.to] },
  };
}

async function rawNodemailer(): Promise<PhaseResult> {
  const transport = rawPool();
  await Promise.all(Array.from({ length: N }, (_, i) => transport.sendMail(rawMail(tiny(i)))));
  transport.close();
  return { note: `pool of ${CONNECTIONS}, maxMessages ∞` };
}

// ------------------------------------------------------------------------------------------ (m) minimal HTTP front

/**
 * A server that parses the JSON body and hands it to the raw pool, answering 202 at once: no API key, no
 * validation, nothing stored, messages lost on a crash. No real service would ship it; it shows how much of
 * (a) is left on this machine once an HTTP client and an HTTP server share the cores, which bounds (c).
 */
async function startMinimalFront(): Promise<{ url: string; close(): Promise<void> }> {
  const transport = rawPool();
  const front = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      void transport.sendMail(rawMail(JSON.parse(body) as { to: string; subject: string; text: string }));
      res.writeHead(202, { 'content-type': 'application/json' });
      res.end('{"id":"x","status":"queued"}');
    });
  });
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(front.address() as net.AddressInfo).port}`,
    async close() {
      transport.close();
      front.closeAllConnections();
      await new Promise<void>((r) => front.close(() => r()));
    },
  };
}

// ------------------------------------------------------------------------------------------ app builder for (b) and (c)

/** A mailgate instance in its own process (bench/mailgate-process.ts), so its CPU and RSS are its own. */
interface Instance {
  pid: number;
  serverId: string;
  url: string;
  key: string;
  join: NonNullable<InstanceOptions['join']>;
  send(command: Command): Promise<unknown>;
}

async function startInstance(options: InstanceOptions, entry = instanceArgs): Promise<Instance> {
  const child = spawn(
    process.execPath,
    [
      // As npm start runs it (its memory flags), plus e.g. MAILGATE_BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=prof"
      // to profile mailgate alone.
      ...startNodeFlags(),
      ...(process.env.MAILGATE_BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
      ...entry,
      JSON.stringify(options),
    ],
    { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
  );
  let pending: { cmd: string; resolve: (value: unknown) => void; reject: (e: Error) => void } | null = null;
  const ready = new Promise<{
    url: string;
    key: string;
    serverId: string;
    encryptionKeys: string;
    sessionSecrets: string;
  }>((resolve, reject) => {
    child.once('exit', (code) => {
      reject(new Error(`mailgate exited (${code})`));
      pending?.reject(new Error(`mailgate exited (${code}) during ${pending.cmd}`));
    });
    child.on('message', (m: { ready?: never; done?: string; value?: unknown; failed?: string; error?: string }) => {
      if (m.ready) resolve(m.ready);
      if (m.done && pending?.cmd === m.done) pending.resolve(m.value);
      if (m.failed && pending?.cmd === m.failed) pending.reject(new Error(`${m.failed}: ${m.error}`));
    });
  });
  const r = await ready;
  return {
    pid: child.pid!,
    serverId: r.serverId,
    url: r.url,
    key: r.key,
    join: { serverId: r.serverId, key: r.key, encryptionKeys: r.encryptionKeys, sessionSecrets: r.sessionSecrets },
    send(command) {
      return new Promise((resolve, reject) => {
        pending = { cmd: command.cmd, resolve, reject };
        child.send(command);
      });
    },
  };
}

/**
 * mailgate on the file store (with MAILGATE_FSYNC as given) or on Redis at `redisUrl`, as `instances` processes
 * sharing that Redis (the client spreads its connections over them).
 */
async function buildApp(
  redisUrl: string | null,
  fsync: 'always' | 'off' = 'always',
  options: { instances?: number; entry?: string[]; env?: Record<string, string> } = {},
) {
  const { instances = 1, entry = instanceArgs, env = {} } = options;
  const base: InstanceOptions = {
    sinkPort,
    connections: CONNECTIONS,
    concurrency: QUEUE_CONCURRENCY,
    fsync,
    redisUrl,
    redisPrefix: redisUrl ? `bench:${randomBytes(4).toString('hex')}:` : null,
    env,
    join: null,
  };
  const first = await startInstance(base, entry);
  const all = [first];
  for (let i = 1; i < instances; i++) all.push(await startInstance({ ...base, join: first.join }, entry));
  const each = (command: Command) => Promise.all(all.map((x) => x.send(command))).then(() => undefined);
  // Each instance is a fresh process: its JIT is cold, which doubled the CPU per message of its first phase. A
  // warm-up through the send module (composition, nodemailer, the sink) before anything is measured; the HTTP and
  // queue code warms during (q), which precedes (c) on the same instances.
  const warm = Math.min(N, 500);
  const before = received;
  await each({ cmd: 'send-module', n: warm, concurrency: CONNECTIONS });
  await receivedReaches(before + warm * all.length);
  return {
    pids: all.map((x) => x.pid),
    serverId: first.serverId,
    url: all.map((x) => x.url).join(','),
    key: first.key,
    start: () => each({ cmd: 'start' }),
    /** The worst event-loop delay of any instance since the last call, in ms. */
    stall: async () => Math.max(...((await Promise.all(all.map((x) => x.send({ cmd: 'stall' })))) as number[])),
    /** The most CPU time any instance spent between two ticks of its 10 ms timer since the last call, in ms. */
    cpuStall: async () => Math.max(...((await Promise.all(all.map((x) => x.send({ cmd: 'cpu-stall' })))) as number[])),
    stopQueue: () => each({ cmd: 'stop-queue' }),
    /** Runs in the first instance: phases (b) and (q). */
    first: (command: Command) => first.send(command),
    close: () => each({ cmd: 'close' }),
  };
}

// ------------------------------------------------------------------------------------------ (b) send module

async function sendModule(app: Awaited<ReturnType<typeof buildApp>>): Promise<PhaseResult> {
  await app.first({ cmd: 'send-module', n: N });
  return { note: 'validate + compose + cached pool' };
}

interface Client {
  go(): Promise<{ latencies: number[]; cpuMs: number }>;
}

/** Starts the load generator and waits until it is ready; `go()` starts it and resolves with its figures. */
async function startClient(url: string, key: string): Promise<Client> {
  const client = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      fileURLToPath(new URL('./api-client.ts', import.meta.url)),
      url,
      key,
      String(N),
      String(CLIENTS),
    ],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
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
      return JSON.parse(line) as { latencies: number[]; cpuMs: number };
    },
  };
}

// ------------------------------------------------------------------------------------------ (c) HTTP API end to end

async function viaHttp(client: Client, note: string): Promise<PhaseResult> {
  // The clients run in their own process, as real apps do, so they do not take the server's event loop.
  const { latencies, cpuMs } = await client.go();
  return { latencies, clientCpuMs: cpuMs, note };
}

// ------------------------------------------------------------------------------------------ (q) queue without HTTP

async function viaQueue(app: Awaited<ReturnType<typeof buildApp>>): Promise<PhaseResult> {
  // Starts the workers; the (c) phase that follows on the same app uses them too.
  await app.start();
  await app.first({ cmd: 'enqueue', n: N, clients: CLIENTS });
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

async function httpCeiling(client: Client): Promise<PhaseResult> {
  const r = await viaHttp(client, 'no mail sent');
  // Nothing reaches the sink here: count the requests as the messages of this phase.
  offset += N;
  received = sinkCount + offset;
  return r;
}

// ------------------------------------------------------------------------------------------ (s0)/(s) SMTP front

/**
 * The same SMTP client straight to the sink (s0), then through the submission front (s) on the file store
 * (MAILGATE_FSYNC=always); then (s0) again and (s) on Redis, when a redis-server is at hand. Each (s) is compared
 * with the (s0) just before it: on a shared machine the load changes within a minute, and (s0) taken once per
 * round made the ratio swing by a factor of two. With several `builds` (--against), each store runs every build
 * in turn after its (s0), under the same load.
 */
async function smtpPhases(
  run: (label: string, fn: () => Promise<PhaseResult>, pids?: number[]) => Promise<unknown>,
  builds: [string, string[]][] = [['', instanceArgs]],
) {
  const redis = await startRedis();
  for (const redisUrl of [null, ...(redis ? [redis.url] : [])]) {
    const direct = await startSmtpClient({ port: sinkPort, n: N, connections: CONNECTIONS });
    await run(`(s0) SMTP client to the sink directly${redisUrl ? ', before Redis' : ''}`, async () => ({
      clientCpuMs: (await direct.go()).cpuMs,
    }));
    for (const [name, entry] of builds) {
      const app = await buildApp(redisUrl, 'always', { env: { MAILGATE_SUBMISSION_PORT: '0' }, entry });
      await app.start();
      const port = (await app.first({ cmd: 'submission-start' })) as number;
      const client = await startSmtpClient({ port, n: N, connections: CONNECTIONS, password: app.key });
      await run(
        `(s) SMTP front, ${redisUrl ? 'Redis' : 'file store'}${name ? `, ${name}` : ''}`,
        async () => {
          const before = received;
          const r = await client.go();
          console.log(
            `    the client had its last 250 after ${(r.elapsedMs / 1000).toFixed(1)} s (${((N / r.elapsedMs) * 1000).toFixed(0)} msgs/s accepted), ${received - before} delivered by then`,
          );
          return { clientCpuMs: r.cpuMs, note: 'STARTTLS + AUTH, durable queue, workers' };
        },
        app.pids,
      );
      await app.close();
    }
  }
  await redis?.stop();
}

// ------------------------------------------------------------------------------------------ run

console.log(
  `mailgate bench: ${N} messages per phase, sink 127.0.0.1:${sinkPort}, Node ${process.version}, ${os.cpus().length} CPUs`,
);

/** The worst event-loop delay of any mailgate process over the counted rounds, ms. */
let worstStall = 0;

/** Per counted round: the Redis commands of phase (c) on Redis, per command name. */
const redisCommands: [string, number][][] = [];

/** One round: every phase once, in the same order. */
async function round(quiet: boolean): Promise<Phase[]> {
  const phases: Phase[] = [];
  const run = async (label: string, fn: () => Promise<PhaseResult>, pids?: number[]) =>
    phases.push(await measure(label, fn, quiet, pids));
  await run('(a) raw nodemailer pool', rawNodemailer);

  const fileApp = await buildApp(null);
  await run('(b) send module', () => sendModule(fileApp), fileApp.pids);
  const front = await startMinimalFront();
  const frontClient = await startClient(front.url, 'none');
  await run('(m) minimal HTTP front to the raw pool', () =>
    viaHttp(frontClient, 'no key check, no validation, nothing stored'),
  );
  await front.close();
  await run('(q) queue only, file store', () => viaQueue(fileApp), fileApp.pids);
  const fileClient = await startClient(fileApp.url, fileApp.key);
  await run(
    '(c) POST /api/v1/messages, file store',
    () => viaHttp(fileClient, `${CLIENTS} HTTP clients, queue concurrency ${QUEUE_CONCURRENCY}`),
    fileApp.pids,
  );
  if (!quiet) worstStall = Math.max(worstStall, await fileApp.stall());
  await fileApp.close();
  // The same with MAILGATE_FSYNC=off: what the fsync of every write batch costs.
  const noSyncApp = await buildApp(null, 'off');
  await run('(q) queue only, file store, fsync off', () => viaQueue(noSyncApp), noSyncApp.pids);
  const noSyncClient = await startClient(noSyncApp.url, noSyncApp.key);
  await run(
    '(c) POST /api/v1/messages, file, fsync off',
    () => viaHttp(noSyncClient, `${CLIENTS} HTTP clients, queue concurrency ${QUEUE_CONCURRENCY}`),
    noSyncApp.pids,
  );
  if (!quiet) worstStall = Math.max(worstStall, await noSyncApp.stall());
  await noSyncApp.close();

  const redis = await startRedis();
  if (redis) {
    // Two instances on one Redis, as a fleet runs: their CPU is summed, the RSS is the larger one's.
    const redisApp = await buildApp(redis.url, 'always', { instances: 2 });
    await run('(q) queue only, Redis, 2 instances', () => viaQueue(redisApp), redisApp.pids);
    const redisClient = await startClient(redisApp.url, redisApp.key);
    const before = await commandStats(redis.url);
    await run(
      '(c) POST /api/v1/messages, Redis, 2 instances',
      () => viaHttp(redisClient, `${CLIENTS} HTTP clients over 2 instances, queue concurrency ${QUEUE_CONCURRENCY}`),
      redisApp.pids,
    );
    // The last outcome writes follow the sink's count: stopping the workers waits for them.
    await redisApp.stopQueue();
    const used = commandsBetween(before, await commandStats(redis.url)).filter(([name]) => name !== 'info');
    if (!quiet) redisCommands.push(used);
    if (!quiet) worstStall = Math.max(worstStall, await redisApp.stall());
    await redisApp.close();
    await redis.stop();
  } else if (!quiet) {
    console.log(
      '  Redis phases skipped: no redis-server found (apt-get install redis-server, or set MAILGATE_BENCH_REDIS_URL)',
    );
  }
  const trivial = await startTrivialServer();
  const trivialClient = await startClient(trivial.url, 'none');
  await run('(h) HTTP ceiling: 202 from a no-op server', () => httpCeiling(trivialClient));
  await trivial.close();
  await smtpPhases(run);
  await run('(a) raw nodemailer pool, again', rawNodemailer);
  return phases;
}

/**
 * --only file|file-nosync|redis: phase (c) of that store alone, warm-up rounds included, nothing else; for a CPU
 * profile of mailgate alone: MAILGATE_BENCH_NODE_ARGS="--cpu-prof" npx tsx bench/run.ts --only file --n 4000.
 * --against <another build's dist/bench/bench/mailgate-process.js>: each round runs that build first, then this
 * one, under the same load (the fair comparison of a change on a shared machine); prints the medians of both.
 * --only smtp: (s0) and (s) alone; with --against, both builds' (s) on each store after the same (s0).
 */
if (values.only === 'smtp') {
  const builds: [string, string[]][] = values.against
    ? [
        ['before', [path.resolve(values.against)]],
        ['after', instanceArgs],
      ]
    : [['', instanceArgs]];
  const ratios = new Map<string, number[]>();
  const cpu = new Map<string, number[]>();
  for (let r = 0; r < WARMUP_ROUNDS + ROUNDS; r++) {
    const phases: Phase[] = [];
    await smtpPhases(async (label, fn, pids) => {
      const p = await measure(`${label}${r < WARMUP_ROUNDS ? ', warm-up' : ''}`, fn, false, pids);
      console.log(`    CPU ms/msg by process: ${cpuLine(p.parts ?? {})}`);
      phases.push({ ...p, label });
    }, builds);
    if (r < WARMUP_ROUNDS) continue;
    let direct = phases[0]!;
    for (const p of phases) {
      if (p.label.startsWith('(s0)')) {
        direct = p;
        continue;
      }
      ratios.set(p.label, [...(ratios.get(p.label) ?? []), p.msgsPerSec / direct.msgsPerSec]);
      cpu.set(p.label, [...(cpu.get(p.label) ?? []), p.cpuMs]);
    }
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  for (const [label, xs] of ratios) {
    console.log(
      `s/s0 = ${median(xs).toFixed(2)} ${label} (median of ${ROUNDS}; goal ≥ 0.4; each round ${xs.map((x) => x.toFixed(2)).join(' ')}), mailgate CPU ${median(cpu.get(label)!).toFixed(2)} ms/msg`,
    );
  }
  sinkProcess.disconnect();
  process.exit(0);
}
/** Large JSON bodies (bench/json-stall.ts) on the file store; --rounds repeats them. */
async function intakePhase(): Promise<void> {
  const app = await buildApp(null);
  await app.start();
  const target = {
    url: app.url,
    key: app.key,
    pid: app.pids[0]!,
    nextDelivery: () => receivedReaches(received + 1),
    mailgateStall: () => app.stall(),
    mailgateCpuStall: () => app.cpuStall(),
  };
  printIntakeStall(await intakeStall(target));
  await app.close();
}
if (values.only === 'intake') {
  for (let r = 0; r < ROUNDS; r++) await intakePhase();
  sinkProcess.disconnect();
  process.exit(0);
}
if (values.only) {
  const only = values.only;
  if (!['file', 'file-nosync', 'redis'].includes(only))
    throw new Error('--only takes file, file-nosync, redis, smtp or intake');
  const builds: [string, string[]][] = values.against
    ? [
        ['before', [path.resolve(values.against)]],
        ['after', instanceArgs],
      ]
    : [['', instanceArgs]];
  const results = new Map<string, Phase[]>(builds.map(([name]) => [name, []]));
  for (let r = 0; r < WARMUP_ROUNDS + ROUNDS; r++) {
    for (const [name, entry] of builds) {
      const redis = only === 'redis' ? await startRedis() : null;
      if (only === 'redis' && !redis) throw new Error('no redis-server found');
      const app = await buildApp(redis?.url ?? null, only === 'file-nosync' ? 'off' : 'always', {
        instances: redis ? 2 : 1,
        entry,
      });
      await app.start();
      const client = await startClient(app.url, app.key);
      const before = redis ? await commandStats(redis.url) : null;
      const label = `(c) ${only}${name ? `, ${name}` : ''}${r < WARMUP_ROUNDS ? ', warm-up' : ''}`;
      const phase = await measure(label, () => viaHttp(client, ''), false, app.pids);
      if (redis && before) {
        await app.stopQueue();
        const used = commandsBetween(before, await commandStats(redis.url)).filter(([cmd]) => cmd !== 'info');
        console.log(
          `    Redis commands per message: ${(used.reduce((sum, [, calls]) => sum + calls, 0) / N).toFixed(1)} (${used
            .slice(0, 8)
            .map(([cmd, calls]) => `${cmd} ${(calls / N).toFixed(2)}`)
            .join(', ')})`,
        );
      }
      if (r >= WARMUP_ROUNDS) results.get(name)!.push(phase);
      await app.close();
      await redis?.stop();
    }
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  for (const [name, phases] of results) {
    console.log(
      `${only}${name ? ` ${name}` : ''}: medians of ${phases.length} round(s): ${median(phases.map((p) => p.msgsPerSec)).toFixed(0)} msgs/s, mailgate CPU ${median(phases.map((p) => p.cpuMs)).toFixed(2)} ms/msg, peak RSS ${Math.max(...phases.map((p) => p.peakRssMb)).toFixed(0)} MB (targets ${CPU_TARGETS}, peak RSS ≤ 150 MB)`,
    );
  }
  sinkProcess.disconnect();
  process.exit(0);
}

for (let i = 1; i <= WARMUP_ROUNDS; i++) {
  console.log(`warm-up round ${i} of ${WARMUP_ROUNDS} (every phase once, not counted)`);
  await round(true);
}
// Several rounds, each phase once per round; the medians are reported (the machine's load varies a lot).
const rounds: Phase[][] = [];
for (let r = 1; r <= ROUNDS; r++) {
  console.log(`round ${r} of ${ROUNDS}`);
  rounds.push(await round(false));
}
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
const phases: Phase[] = rounds[0]!.map((p, i) => {
  const all = rounds.map((r) => r[i]!);
  const m: Phase = {
    label: p.label,
    msgsPerSec: median(all.map((x) => x.msgsPerSec)),
    peakRssMb: Math.max(...all.map((x) => x.peakRssMb)),
    cpuMs: median(all.map((x) => x.cpuMs)),
    machineCpuMs: median(all.map((x) => x.machineCpuMs)),
  };
  if (p.parts)
    m.parts = Object.fromEntries(Object.keys(p.parts).map((k) => [k, median(all.map((x) => x.parts?.[k] ?? 0))]));
  if (p.p50 !== undefined) {
    m.p50 = median(all.map((x) => x.p50!));
    m.p99 = median(all.map((x) => x.p99!));
  }
  return m;
});
const find = (prefix: string) => phases.filter((p) => p.label.startsWith(prefix));
const storeOf = (p: Phase) =>
  p.label.includes('Redis') ? 'Redis' : p.label.includes('fsync off') ? 'file (fsync off)' : 'file';
const raws = find('(a)');
const baseline = raws.reduce((sum, p) => sum + p.msgsPerSec, 0) / raws.length;
console.log(
  `\nmedians of ${ROUNDS} round(s) after ${WARMUP_ROUNDS} warm-up round(s); peak RSS = max of the process running mailgate (the sink and the HTTP clients run in their own processes)`,
);
console.log(
  '\nphase                                        msgs/s   vs (a)   p50 ms   p99 ms   CPU ms/msg   all processes   peak RSS MB',
);
for (const p of phases) {
  console.log(
    `${p.label.padEnd(44)} ${p.msgsPerSec.toFixed(0).padStart(6)}   ${(p.msgsPerSec / baseline).toFixed(2).padStart(6)}   ${p.p50 === undefined ? '     -' : p.p50.toFixed(1).padStart(6)}   ${p.p99 === undefined ? '     -' : p.p99.toFixed(1).padStart(6)}   ${p.cpuMs.toFixed(2).padStart(10)}   ${p.machineCpuMs.toFixed(2).padStart(13)}   ${p.peakRssMb.toFixed(0).padStart(11)}`,
  );
}
/**
 * A ratio is taken within each round (phase against that round's own raw runs, or against another phase of the
 * same round), then the median over rounds: the machine's speed drifts between rounds, far less within one.
 */
const ratio = (p: Phase, to?: Phase) => {
  const i = phases.indexOf(p);
  const j = to ? phases.indexOf(to) : -1;
  const perRound = rounds.map((r) => {
    const raw = r.filter((x) => x.label.startsWith('(a)'));
    const base = j >= 0 ? r[j]!.msgsPerSec : raw.reduce((sum, x) => sum + x.msgsPerSec, 0) / raw.length;
    return r[i]!.msgsPerSec / base;
  });
  return median(perRound).toFixed(2);
};
const b = find('(b)')[0]!;
const m = find('(m)')[0]!;
const cs = find('(c)');
console.log(
  `\nratios, each the median over rounds of the ratio within a round (against the mean of that round's two raw runs for x/a):`,
);
console.log(`  b/a = ${ratio(b)} (target ≥ 0.95)`);
console.log(`  c/a = ${cs.map((p) => `${ratio(p)} ${storeOf(p)}`).join(', ')} (target ≥ 0.70)`);
console.log(`  m/a = ${ratio(m)}: the ceiling of any HTTP-fronted sender here (no key check, validation or storage)`);
console.log(`  c/m = ${cs.map((p) => `${ratio(p, m)} ${storeOf(p)}`).join(', ')}: mailgate against that ceiling`);
for (const s of find('(s) ')) {
  // Against the (s0) run just before it.
  const s0 = phases.slice(0, phases.indexOf(s)).findLast((p) => p.label.startsWith('(s0)'))!;
  console.log(
    `  s/s0 = ${ratio(s, s0)} ${s.label.slice(4)} (goal ≥ 0.4): against the same client straight to the sink`,
  );
  console.log(`    CPU ms/msg by process: ${cpuLine(s.parts ?? {})}, (s0): ${cpuLine(s0.parts ?? {})}`);
}
const cores = os.cpus().length;
console.log(
  `\nCPU per message summed over every process (mailgate or the raw pool, sink, HTTP client, Redis), on ${cores} core(s): (a) ${raws[0]!.machineCpuMs.toFixed(2)} ms, (m) ${m.machineCpuMs.toFixed(2)} ms, ${cs.map((p) => `(c) ${storeOf(p)} ${p.machineCpuMs.toFixed(2)} ms`).join(', ')}.`,
);
console.log(
  `At full use of ${cores} core(s) that allows at most ${cs.map((p) => `${((cores * 1000) / p.machineCpuMs / baseline).toFixed(2)} of (a) for (c) ${storeOf(p)}`).join(', ')}; the busiest single process (mailgate) allows ${cs.map((p) => `${(1000 / p.cpuMs / baseline).toFixed(2)} ${storeOf(p)}`).join(', ')}.`,
);
console.log(
  `mailgate's own CPU per message (its process alone): ${cs.map((p) => `(c) ${storeOf(p)} ${p.cpuMs.toFixed(2)} ms`).join(', ')} (targets ${CPU_TARGETS}); peak RSS ${Math.max(...cs.map((p) => p.peakRssMb)).toFixed(0)} MB (target ≤ 150 MB).`,
);
if (redisCommands.length > 0) {
  const perMessage = redisCommands.map((used) => used.reduce((sum, [, calls]) => sum + calls, 0) / N);
  const last = redisCommands.at(-1)!;
  console.log(
    `Redis commands per message, (c) end to end, commands inside scripts included: ${perMessage.map((x) => x.toFixed(1)).join(', ')} (rounds); last round by command: ${last
      .slice(0, 12)
      .map(([name, calls]) => `${name} ${(calls / N).toFixed(2)}`)
      .join(', ')}.`,
  );
  console.log(
    `One Redis at ~100,000 commands/s carries about ${Math.round(100_000 / median(perMessage)).toLocaleString('en')} messages/s for a whole fleet.`,
  );
}
console.log(`\nworst event-loop stall of the process running mailgate during the rounds: ${worstStall.toFixed(1)} ms`);

// HTML-only messages: the review's 100,000 <, then crafted bodies of the largest size the API accepts.
const stallApp = await buildApp(null);
await stallApp.start();
const stalls = await htmlStall(
  {
    url: stallApp.url,
    key: stallApp.key,
    nextDelivery: () => receivedReaches(received + 1),
    mailgateStall: () => stallApp.stall(),
  },
  [['100,000 <', '<'.repeat(100_000)], ...craftedBodies(HTML_CHARS)],
);
await stallApp.close();
printHtmlStall(stalls);
await intakePhase();

// OAuth token refresh counts (bench/oauth-refresh.ts).
await oauthRefreshBench();
sinkProcess.disconnect();
process.exit(0);
