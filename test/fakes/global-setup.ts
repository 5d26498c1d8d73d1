import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { freePort } from './net.js';
import { onPath } from './binaries.js';
import { spawnRedisServer } from './redis-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** URL of a Redis private to this test run, or null when none could be had (suites skip loudly). */
    redisUrl: string | null;
    /** Path of a Chromium binary, or null (browser suites skip loudly). */
    chromiumPath: string | null;
  }
}

const inCI = process.env.CI === 'true' || process.env.CI === '1';

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
      redis = await spawnRedisServer(binary, port, redisDir);
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
