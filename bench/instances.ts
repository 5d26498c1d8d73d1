import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Bench } from './context.js';
import type { Command, InstanceOptions } from './mailgate-process.js';
import { startNodeFlags } from './start-flags.js';

/** A mailgate instance in its own process (bench/mailgate-process.ts), so its CPU and RSS are its own. */
interface Instance {
  pid: number;
  serverId: string;
  url: string;
  key: string;
  join: NonNullable<InstanceOptions['join']>;
  send(command: Command): Promise<unknown>;
}

async function startInstance(options: InstanceOptions, entry: string[]): Promise<Instance> {
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

/** One or more mailgate instances on one store, driven as one. */
export interface App {
  pids: number[];
  serverId: string;
  /** The instances' URLs, comma-separated (the API client spreads its connections over them). */
  url: string;
  key: string;
  start(): Promise<void>;
  /** The worst event-loop delay of any instance since the last call, in ms. */
  stall(): Promise<number>;
  /** The most CPU time any instance spent between two ticks of its 10 ms timer since the last call, in ms. */
  cpuStall(): Promise<number>;
  stopQueue(): Promise<void>;
  /** Runs in the first instance: phases (b) and (q). */
  first(command: Command): Promise<unknown>;
  close(): Promise<void>;
}

/**
 * mailgate on the file store (with MAILGATE_FSYNC as given) or on Redis at `redisUrl`, as `instances` processes
 * sharing that Redis (the client spreads its connections over them). `entry` starts another build's instances.
 */
export async function buildApp(
  bench: Bench,
  redisUrl: string | null,
  fsync: 'always' | 'off' = 'always',
  options: { instances?: number; entry?: string[]; env?: Record<string, string> } = {},
): Promise<App> {
  const { instances = 1, entry = bench.entry, env = {} } = options;
  const { sink } = bench;
  const base: InstanceOptions = {
    sinkPort: sink.port,
    connections: bench.options.connections,
    concurrency: bench.options.queueConcurrency,
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
  const warm = Math.min(bench.options.n, 500);
  const before = sink.received;
  await each({ cmd: 'send-module', n: warm, concurrency: bench.options.connections });
  await sink.receivedReaches(before + warm * all.length);
  return {
    pids: all.map((x) => x.pid),
    serverId: first.serverId,
    url: all.map((x) => x.url).join(','),
    key: first.key,
    start: () => each({ cmd: 'start' }),
    stall: async () => Math.max(...((await Promise.all(all.map((x) => x.send({ cmd: 'stall' })))) as number[])),
    cpuStall: async () => Math.max(...((await Promise.all(all.map((x) => x.send({ cmd: 'cpu-stall' })))) as number[])),
    stopQueue: () => each({ cmd: 'stop-queue' }),
    first: (command: Command) => first.send(command),
    close: () => each({ cmd: 'close' }),
  };
}
