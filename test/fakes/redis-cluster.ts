import { execFile, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { onPath } from './binaries.js';
import { freePort } from './net.js';
import { spawnRedisServer } from './redis-server.js';

const run = promisify(execFile);

/**
 * A private Redis Cluster of three masters (no replicas) on 127.0.0.1, each with AOF on and its own folder in one
 * temp dir, so a master killed with SIGKILL comes back with its data and its place in the cluster (nodes.conf).
 * Started by the suites that need it (test/integration/redis-cluster*.test.ts, the cluster part of the store
 * contract); `null` from redisClusterTools() when redis-server or redis-cli is missing (they skip loudly, and CI
 * fails first: global-setup.ts requires both there).
 */
export interface TestRedisCluster {
  /** `redis://127.0.0.1:<port of the first master>`: any node is enough for the client. */
  url: string;
  ports: number[];
  /** The index in `ports` of the master serving `key`'s hash slot. */
  masterOf(key: string): Promise<number>;
  /** SIGKILL of one master; resolves once it has exited. */
  kill(index: number): Promise<void>;
  /** Starts a killed master again on its port and folder; resolves once the cluster says `ok` again. */
  restart(index: number): Promise<void>;
  stop(): Promise<void>;
}

export function redisClusterTools(): { server: string; cli: string } | null {
  const server = onPath('redis-server');
  const cli = onPath('redis-cli');
  return server && cli ? { server, cli } : null;
}

/** How long a silent master takes to count as failed; short, so a chaos test sees the whole cycle. */
const NODE_TIMEOUT_MS = 2000;

export async function startRedisCluster(
  options: { appendfsync?: 'always' | 'everysec' } = {},
): Promise<TestRedisCluster> {
  const tools = redisClusterTools();
  if (!tools)
    throw new Error('redis-server and redis-cli are needed for a test cluster (apt-get install redis-server)');
  const root = await mkdtemp(path.join(os.tmpdir(), 'mailgate-test-cluster-'));
  const ports: number[] = [];
  const busPorts: number[] = [];
  while (ports.length < 3) {
    const [port, bus] = [await freePort(), await freePort()];
    if (port === bus || ports.includes(port) || busPorts.includes(bus)) continue;
    ports.push(port);
    busPorts.push(bus);
  }
  const args = (i: number): string[] => [
    '--cluster-enabled',
    'yes',
    '--cluster-port',
    String(busPorts[i]),
    '--cluster-config-file',
    'nodes.conf',
    '--cluster-node-timeout',
    String(NODE_TIMEOUT_MS),
    '--appendonly',
    'yes',
    '--appendfsync',
    options.appendfsync ?? 'everysec',
  ];
  const dirOf = (i: number) => path.join(root, `node${i}`);
  const procs: (ChildProcess | null)[] = [null, null, null];
  const start = async (i: number) => {
    procs[i] = await spawnRedisServer(tools.server, ports[i]!, dirOf(i), args(i));
  };
  const cli = async (port: number, ...command: string[]) =>
    (await run(tools.cli, ['-h', '127.0.0.1', '-p', String(port), ...command])).stdout;
  const stop = async () => {
    await Promise.all(procs.map((p) => (p && p.exitCode === null ? killed(p) : Promise.resolve())));
    await rm(root, { recursive: true, force: true });
  };

  try {
    for (let i = 0; i < 3; i++) await mkdir(dirOf(i));
    await Promise.all([0, 1, 2].map(start));
    const nodes = ports.map((p) => `127.0.0.1:${p}`);
    await run(tools.cli, ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes']);
    await waitClusterOk(cli, ports);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url: `redis://127.0.0.1:${ports[0]}`,
    ports,
    async masterOf(key) {
      const slot = Number((await cli(ports[0]!, 'CLUSTER', 'KEYSLOT', key)).trim());
      for (let i = 0; i < 3; i++) if (await servesSlot(cli, ports[i]!, slot)) return i;
      throw new Error(`no master serves slot ${slot}`);
    },
    async kill(i) {
      await killed(procs[i]!);
    },
    async restart(i) {
      await start(i);
      await waitClusterOk(cli, ports);
    },
    stop,
  };
}

function killed(proc: ChildProcess): Promise<void> {
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.kill('SIGKILL');
  return exited;
}

async function servesSlot(cli: (port: number, ...c: string[]) => Promise<string>, port: number, slot: number) {
  const lines = (await cli(port, 'CLUSTER', 'NODES')).split('\n');
  const self = lines.find((l) => l.includes('myself'));
  if (!self) return false;
  return self
    .split(' ')
    .slice(8)
    .some((range) => {
      const [from, to] = range.split('-').map(Number);
      return from !== undefined && slot >= from && slot <= (to ?? from);
    });
}

/** Until every node says `cluster_state:ok` (all slots served, nodes agree), or 20 s. */
async function waitClusterOk(cli: (port: number, ...c: string[]) => Promise<string>, ports: number[]): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const states = await Promise.all(ports.map((p) => cli(p, 'CLUSTER', 'INFO').catch(() => '')));
    if (states.every((s) => s.includes('cluster_state:ok'))) return;
    if (Date.now() > deadline) throw new Error(`the test cluster did not become ok within 20 s:\n${states.join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
