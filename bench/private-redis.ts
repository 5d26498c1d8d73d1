import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { onPath } from '../test/fakes/binaries.js';
import { freePort } from '../test/fakes/net.js';
import { spawnRedisServer } from '../test/fakes/redis-server.js';

export interface BenchRedis {
  url: string;
  stop(): Promise<void>;
}

/**
 * A private redis-server per use (or MAILGATE_BENCH_REDIS_URL), one at a time: the one running has a pid, whose
 * CPU is charged to the phases that use it.
 */
export class PrivateRedis {
  /** The Redis server whose CPU is charged to the phases that use it (only one started here has a pid). */
  pid: number | undefined;

  /** null when there is no redis-server on the PATH. */
  async start(): Promise<BenchRedis | null> {
    if (process.env.MAILGATE_BENCH_REDIS_URL)
      return { url: process.env.MAILGATE_BENCH_REDIS_URL, stop: async () => undefined };
    const binary = onPath('redis-server');
    if (!binary) return null;
    const port = await freePort();
    const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-bench-redis-'));
    const proc = await spawnRedisServer(binary, port, dir);
    this.pid = proc.pid;
    return {
      url: `redis://127.0.0.1:${port}`,
      stop: async () => {
        this.pid = undefined;
        proc.kill('SIGTERM');
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
}
