import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
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
    /** Programs and devices single tests need; null where this machine has none (those tests skip loudly). */
    tools: TestTools;
  }
}

export interface TestTools {
  /** A redis-server the test may start and kill itself (the shared test Redis must stay up). */
  redisServer: string | null;
  /** redis-cli, which builds the local Redis Cluster of the cluster suites (test/fakes/redis-cluster.ts). */
  redisCli: string | null;
  /** util-linux `script`: runs a command on a pseudo-terminal. */
  script: string | null;
  /** A device whose every write fails with ENOSPC, like a full disk. */
  devFull: string | null;
}

/** What each tool is for and which Debian package brings it (.ci/run installs them). */
const TOOL_NEEDS: Record<keyof TestTools, string> = {
  redisServer: 'redis-server (Redis outage tests; apt-get install redis-server)',
  redisCli: 'redis-cli (Redis Cluster suites; apt-get install redis-server brings it)',
  script: 'script (CLI progress bar on a terminal; apt-get install bsdutils)',
  devFull: '/dev/full (disk-full tests; a standard Linux device)',
};

const inCI = process.env.CI === 'true' || process.env.CI === '1';

function banner(lines: string[]): void {
  const bar = '!'.repeat(78);
  console.warn(`\n${bar}\n${lines.map((l) => `!! ${l}`).join('\n')}\n${bar}\n`);
}

let redis: ChildProcess | undefined;
let redisDir: string | undefined;

export async function setup(project: TestProject): Promise<void> {
  const skipped: string[] = [];

  const tools: TestTools = {
    redisServer: onPath('redis-server'),
    redisCli: onPath('redis-cli'),
    script: onPath('script'),
    devFull: existsSync('/dev/full') ? '/dev/full' : null,
  };
  for (const name of Object.keys(tools) as Array<keyof TestTools>) {
    if (!tools[name]) skipped.push(`Tests that need ${TOOL_NEEDS[name]}`);
  }
  const chromiumPath = process.env.MAILGATE_TEST_CHROMIUM ?? onPath('chromium') ?? onPath('chromium-browser');
  if (!chromiumPath)
    skipped.push(
      'Browser suites: chromium not found on PATH (apt-get install chromium, or set MAILGATE_TEST_CHROMIUM)',
    );

  let redisUrl: string | null = process.env.MAILGATE_TEST_REDIS_URL ?? null;
  if (!redisUrl && !tools.redisServer) {
    skipped.push(
      'Redis-backed suites: redis-server not found on PATH (apt-get install redis-server, or set MAILGATE_TEST_REDIS_URL)',
    );
  }

  // In CI nothing may be skipped: every missing tool is named at once and the run fails before any test.
  if (inCI && skipped.length > 0) {
    throw new Error(
      `CI=true but this machine lacks what some tests need (.ci/run installs it):\n  ${skipped.join('\n  ')}`,
    );
  }

  if (!redisUrl && tools.redisServer) {
    const port = await freePort();
    redisDir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-test-redis-'));
    redis = await spawnRedisServer(tools.redisServer, port, redisDir);
    redisUrl = `redis://127.0.0.1:${port}`;
  }

  // Each project runs this setup; say it once per run.
  if (skipped.length > 0 && !process.env.MAILGATE_TEST_SKIP_BANNER_SHOWN) {
    banner(['SKIPPING SUITES — this run does not test everything:', ...skipped]);
    process.env.MAILGATE_TEST_SKIP_BANNER_SHOWN = '1';
    // Read by the summary reporter, so the last lines of the run say it again.
    process.env.MAILGATE_TEST_MISSING_TOOLS = skipped.join('\n');
  }
  project.provide('redisUrl', redisUrl);
  project.provide('chromiumPath', chromiumPath);
  project.provide('tools', tools);
}

export async function teardown(): Promise<void> {
  redis?.kill('SIGTERM');
  if (redisDir) await rm(redisDir, { recursive: true, force: true });
}
