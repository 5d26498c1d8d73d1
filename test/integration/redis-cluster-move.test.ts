import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterKeyOf } from '../../src/store/redis-copy.js';
import { HttpSession, startTestApp, type TestApp } from '../fakes/app.js';
import { cliInProcess } from '../fakes/cli.js';
import { redisUrlForTests } from '../fakes/redis.js';
import { redisClusterTools, startRedisCluster, type TestRedisCluster } from '../fakes/redis-cluster.js';

/**
 * Moving a fleet from one Redis to a Redis Cluster (README): stop the instances, `mailgate redis
 * copy-to-cluster --from <old>`, start them with MAILGATE_REDIS_MODE=cluster. Everything carries over: documents,
 * counters, schedules, logs, sessions (still logged in) and API keys.
 */

describe('cluster key names', () => {
  it('move the families bound together by the scripts under the hash tag, and only those', () => {
    const p = 'mailgate:';
    expect(clusterKeyOf(p, 'mailgate:d:messages:msg_1')).toBe('{mailgate:}d:messages:msg_1');
    expect(clusterKeyOf(p, 'mailgate:i:messages')).toBe('{mailgate:}i:messages');
    expect(clusterKeyOf(p, 'mailgate:sched:mail')).toBe('{mailgate:}sched:mail');
    expect(clusterKeyOf(p, 'mailgate:counters')).toBe('{mailgate:}counters');
    expect(clusterKeyOf(p, 'mailgate:collections')).toBe('{mailgate:}collections');
    for (const key of ['mailgate:sess:abc', 'mailgate:rl:login:1.2.3.4', 'mailgate:lock:x', 'mailgate:log:audit'])
      expect(clusterKeyOf(p, key)).toBe(key);
    expect(clusterKeyOf(p, 'mailgate:countersx')).toBe('mailgate:countersx');
  });
});

describe.skipIf(!redisUrlForTests() || !redisClusterTools())('moving a fleet from one Redis to a cluster', () => {
  let cluster: TestRedisCluster;
  let before: TestApp;
  const started: TestApp[] = [];
  beforeAll(async () => {
    cluster = await startRedisCluster();
    before = await startTestApp({ store: 'redis' });
    started.push(before);
  });
  afterAll(async () => {
    for (const app of started.reverse()) await app.close();
    await cluster?.stop();
  });

  it('carries documents, counters, schedules, logs, sessions and API keys over', async () => {
    const admin = await before.browserSession('admin');
    const key = await before.apiKey(['admin']);
    const store = before.store;
    await store.put('moved', 'a', { n: 1 }, { count: [{ counter: 'moved-count', delta: 3 }] });
    await store.put('moved', 'b', { n: 2 }, { schedule: [{ queue: 'moved-q', dueAt: 1234 }] });
    const logId = await store.append('moved-log', { line: 1 });
    const docs = await store.list('moved');
    await before.close();

    const env = { ...before.env, REDIS_URL: cluster.url, MAILGATE_REDIS_MODE: 'cluster' };
    const refused = await cliInProcess(before.env, 'redis', 'copy-to-cluster', '--from', before.env.REDIS_URL!);
    expect(refused.code, 'without MAILGATE_REDIS_MODE=cluster there is no target').toBe(2);
    const copy = await cliInProcess(env, 'redis', 'copy-to-cluster', '--from', before.env.REDIS_URL!);
    expect(copy.stderr).toMatch(/copied \d+ keys/);
    expect(copy.code).toBe(0);

    const after = await startTestApp({
      shareWith: before,
      env: { REDIS_URL: cluster.url, MAILGATE_REDIS_MODE: 'cluster' },
    });
    started.push(after);
    expect(after.config.MAILGATE_REDIS_MODE).toBe('cluster');
    expect(await after.store.list('moved')).toEqual(docs);
    expect(await after.store.counters(['moved-count'])).toEqual([3]);
    expect(await after.store.scheduled('moved-q', { limit: 5 })).toEqual([{ id: 'b', dueAt: 1234 }]);
    expect(await after.store.readLog('moved-log', { limit: 5 })).toEqual([{ id: logId, entry: { line: 1 } }]);
    // Writes go on where they stopped: versions and compare-and-set continue on the cluster.
    expect((await after.store.put('moved', 'a', { n: 3 }, { ifVersion: 1 })).version).toBe(2);

    const session = new HttpSession(after.url);
    for (const [k, v] of admin.cookies) session.cookies.set(k, v);
    expect((await session.fetch('/admin/audit')).status, 'the admin is still logged in').toBe(200);
    const api = await fetch(`${after.url}/api/v1/audit?limit=1`, { headers: { authorization: `Bearer ${key}` } });
    expect(api.status).toBe(200);

    // A second run (say, after a few late writes) replaces what the first copied instead of failing.
    expect((await cliInProcess(env, 'redis', 'copy-to-cluster', '--from', before.env.REDIS_URL!)).code).toBe(0);
  });
});
