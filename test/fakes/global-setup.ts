import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** URL of a Redis private to this test run, or null when none could be had (suites skip loudly). */
    redisUrl: string | null;
    /** Path of a Chromium binary, or null (browser suites skip loudly). */
    chromiumPath: string | null;
  }
}

const inCI = process.env.CI === 'true' || process.env.CI === '1';

function onPath(binary: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, binary);
    if (existsSync(candidate)) return candidate;
  }
  return null;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.end();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`redis-server did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function banner(lines: string[]): void {
  const bar = '!'.repeat(78);
  console.warn(`\n${bar}\n${lines.map((l) => `!! ${l}`).join('\n')}\n${bar}\n`);
}

let redis: ChildProcess | undefined;
let redisDir: string | undefined;

export async function setup(project: TestProject): Promise<void> {
  const skipped: string[] = [];

  let redisUrl: string | null = process.env.MAILGATE_TEST_REDIS_URL ?? null;
  if (!redisUrl) {
    const binary = onPath('redis-server');
    if (binary) {
      const port = await freePort();
      redisDir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-test-redis-'));
      redis = spawn(binary, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', redisDir], {
        stdio: 'ignore',
      });
      await waitForPort(port, 10_000);
      redisUrl = `redis://127.0.0.1:${port}`;
    } else if (inCI) {
      throw new Error('CI=true but redis-server is not installed: the Redis suites are mandatory in CI (apt-get install -y redis-server).');
    } else {
      skipped.push('Redis-backed suites: redis-server not found on PATH (apt-get install redis-server, or set MAILGATE_TEST_REDIS_URL)');
    }
  }

  const chromiumPath = process.env.MAILGATE_TEST_CHROMIUM ?? onPath('chromium') ?? onPath('chromium-browser');
  if (!chromiumPath) {
    if (inCI) throw new Error('CI=true but Chromium is not installed: the browser suites are mandatory in CI (apt-get install -y chromium).');
    skipped.push('Browser suites: chromium not found on PATH (apt-get install chromium, or set MAILGATE_TEST_CHROMIUM)');
  }

  // Each project runs this setup; say it once per run.
  if (skipped.length > 0 && !process.env.MAILGATE_TEST_SKIP_BANNER_SHOWN) {
    banner(['SKIPPING SUITES — this run does not test everything:', ...skipped]);
    process.env.MAILGATE_TEST_SKIP_BANNER_SHOWN = '1';
  }
  project.provide('redisUrl', redisUrl);
  project.provide('chromiumPath', chromiumPath);
}

export async function teardown(): Promise<void> {
  redis?.kill('SIGTERM');
  if (redisDir) await rm(redisDir, { recursive: true, force: true });
}
