import type { ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { freePort } from '../fakes/net.js';
import { redisUrlForTests } from '../fakes/redis.js';
import { spawnRedisServer } from '../fakes/redis-server.js';
import { toolForTests } from '../fakes/tools.js';

// /readyz is what a load balancer asks: it must turn 503 quickly when Redis goes away, while /healthz
// (the process is up) stays 200, and turn back to 200 when Redis returns.

const binary = toolForTests('redisServer');
let redis: ChildProcess | undefined;
let app: TestApp | undefined;

afterEach(async () => {
  redis?.kill('SIGKILL');
  await app?.close().catch(() => undefined);
  app = undefined;
});

describe.skipIf(!redisUrlForTests() || !binary)('readiness on Redis', () => {
  it('answers 503 within about 2 s once Redis dies, 200 again once it is back; /healthz stays 200', async () => {
    const port = await freePort();
    redis = await spawnRedisServer(binary!, port);
    app = await startTestApp({ store: 'redis', env: { REDIS_URL: `redis://127.0.0.1:${port}` } });
    expect((await fetch(`${app.url}/readyz`)).status).toBe(200);

    redis.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    const down = await fetch(`${app.url}/readyz`);
    expect(down.status).toBe(503);
    expect(Date.now() - started).toBeLessThan(3000);
    const body = (await down.json()) as { status: string; checks: { store: { ok: boolean } } };
    expect(body).toMatchObject({ status: 'unavailable', checks: { store: { ok: false } } });
    expect((await fetch(`${app.url}/healthz`)).status).toBe(200);

    redis = await spawnRedisServer(binary!, port);
    await expect
      .poll(async () => (await fetch(`${app!.url}/readyz`)).status, { timeout: 15_000, interval: 200 })
      .toBe(200);
  });
});
