import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpSession, startTestApp, type TestApp } from '../fakes/app.js';
import { redisClusterTools, startRedisCluster, type TestRedisCluster } from '../fakes/redis-cluster.js';

/**
 * Two mailgate instances on a local three-master Redis Cluster (MAILGATE_REDIS_MODE=cluster): sessions, login
 * limits, revocations (pub/sub) and the API cross instances as on one Redis, and the keys land where the
 * layout says: the data under one hash tag on one master, sessions and limits spread over the masters.
 */

function withCookie(app: TestApp, from: HttpSession): HttpSession {
  const s = new HttpSession(app.url);
  for (const [k, v] of from.cookies) s.cookies.set(k, v);
  s.csrf = from.csrf;
  return s;
}

/** The keys under `prefix` (or under `{prefix}`) each master holds. */
async function keysPerMaster(cluster: TestRedisCluster, prefix: string): Promise<string[][]> {
  return Promise.all(
    cluster.ports.map(async (port) => {
      const node = new Redis(port, '127.0.0.1', { lazyConnect: true });
      try {
        await node.connect();
        const plain = await node.keys(`${prefix}*`);
        const tagged = await node.keys(`{${prefix}}*`);
        return [...plain, ...tagged];
      } finally {
        node.disconnect();
      }
    }),
  );
}

describe.skipIf(!redisClusterTools())('two instances on a Redis Cluster', () => {
  let cluster: TestRedisCluster;
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    cluster = await startRedisCluster();
    a = await startTestApp({
      store: 'redis-cluster',
      clusterUrl: cluster.url,
      env: { MAILGATE_TRUST_PROXY: '1' },
    });
    b = await startTestApp({ shareWith: a });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
    await cluster?.stop();
  });

  it('share sessions: log in on A, use the cookie on B, log out on B ends it on A', async () => {
    expect(a.config.MAILGATE_REDIS_MODE).toBe('cluster');
    const onA = await a.browserSession('sysadmin');
    await onA.refreshCsrf();
    const onB = withCookie(b, onA);
    expect((await onB.get('/admin/api-keys')).res.status).toBe(200);
    const created = await onB.postForm('/admin/api-keys', { name: 'made on B', scopes: ['send'] });
    expect(created.res.status).toBe(303);
    expect((await a.services.apiKeys.list()).map((k) => k.name)).toContain('made on B');
    expect((await onB.postForm('/logout')).res.status).toBe(303);
    expect((await onA.fetch('/admin/audit')).status).toBe(303);
  });

  it('the login limits hold across instances: attempts counted on A are counted on B', async () => {
    const { email, password } = await a.createUser('admin');
    const address = `10.7.${randomBytes(1)[0]}.1`;
    const attempt = async (app: TestApp, pw: string) => {
      const s = app.anonymousSession();
      const token = await s.refreshCsrf();
      return s.fetch('/login', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': address },
        body: new URLSearchParams({ _csrf: token, email, password: pw }),
      });
    };
    for (let i = 0; i < 6; i++) expect((await attempt(i % 2 ? a : b, `wrong-password-${i}`)).status).toBe(401);
    for (const app of [a, b]) {
      const res = await attempt(app, password);
      expect(res.status).toBe(429);
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    }
  });

  it('a key revoked on A is refused by B on the very next request; messages queue through the API', async () => {
    const admin = await a.apiKey(['admin']);
    const victim = await a.apiKey(['send', 'admin'], 'victim');
    const call = (app: TestApp, key: string) =>
      fetch(`${app.url}/api/v1/audit?limit=1`, { headers: { authorization: `Bearer ${key}` } });
    expect((await call(b, victim)).status).toBe(200);
    const id = (await b.services.apiKeys.list()).find((k) => k.name === 'victim')!.id;
    const del = await fetch(`${a.url}/api/v1/api-keys/${id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${admin}` },
    });
    expect(del.status).toBe(200);
    expect((await call(b, victim)).status).toBe(401);
    expect((await fetch(`${b.url}/readyz`)).status).toBe(200);
  });

  it('keeps the data under one hash tag on one master and spreads sessions and limits over the masters', async () => {
    // Enough sessions (only signed-in ones are stored) that each master gets some unless they all hash alike.
    for (let i = 0; i < 25; i++) await (i % 2 ? a : b).browserSession('admin');
    const prefix = a.config.MAILGATE_REDIS_PREFIX;
    const perMaster = await keysPerMaster(cluster, prefix);
    const data = perMaster.map((keys) => keys.filter((k) => k.startsWith(`{${prefix}}`)).length);
    const sessions = perMaster.map((keys) => keys.filter((k) => k.startsWith(`${prefix}sess:`)).length);
    expect(
      data.filter((n) => n > 0),
      `data keys per master: ${data.join(', ')}`,
    ).toHaveLength(1);
    expect(data.reduce((x, y) => x + y)).toBeGreaterThan(5);
    expect(sessions.filter((n) => n > 0).length, `session keys per master: ${sessions.join(', ')}`).toBe(3);
    // Nothing of the deployment outside the prefix, and no untagged document.
    expect(perMaster.flat().filter((k) => k.startsWith(`${prefix}d:`))).toEqual([]);
  });
});
