import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServerInput } from '../../src/mail/servers.js';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { redisUrlForTests } from '../fakes/redis.js';

// The policy of an API key (serverId, allowedFrom, rateLimitPerMinute): set through the API and the form,
// shown and audited, and enforced by the send API; on Redis the rate holds across two instances.

const system = { actor: { type: 'system' as const, id: 'test' } };

interface Answer {
  status: number;
  retryAfter: string | null;
  body: Record<string, unknown> & { error?: { code: string; message: string; details: { field: string }[] } };
}

async function call(app: TestApp, method: string, path: string, key: string, body?: unknown): Promise<Answer> {
  const res = await fetch(`${app.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return {
    status: res.status,
    retryAfter: res.headers.get('retry-after'),
    body: text ? (JSON.parse(text) as Answer['body']) : {},
  };
}

const message = (extra: Record<string, unknown> = {}) => ({
  to: 'a@example.net',
  subject: 'policy',
  text: 'hello',
  ...extra,
});

for (const kind of ['file', 'redis'] as const) {
  describe.skipIf(kind === 'redis' && !redisUrlForTests())(`API key policy on the ${kind} store`, () => {
    let app: TestApp;
    let adminKey: string;
    let mainServer: string;
    let otherServer: string;

    async function createKey(policy: Record<string, unknown>): Promise<{ key: string; id: string }> {
      const r = await call(app, 'POST', '/api/v1/api-keys', adminKey, {
        name: 'policy key',
        scopes: ['send'],
        ...policy,
      });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      return { key: r.body.key as string, id: r.body.id as string };
    }

    beforeAll(async () => {
      app = await startTestApp({ store: kind });
      adminKey = await app.apiKey(['admin']);
      const server = (name: string, fromAddress: string, isDefault: boolean) =>
        app.services.mail.servers.create(
          createServerInput.parse({ name, fromAddress, host: '127.0.0.1', port: 2525, authMethod: 'none', isDefault }),
          system,
        );
      mainServer = (await server('Main', 'notify@example.com', true)).id;
      otherServer = (await server('Other', 'alerts@other.example', false)).id;
    });

    afterAll(async () => {
      await app?.close();
    });

    it('stores the policy given to POST /api/v1/api-keys, shows it in GET and audits it', async () => {
      const { id } = await createKey({
        serverId: mainServer,
        allowedFrom: ['Notify@Example.com', '*@example.org'],
        rateLimitPerMinute: 10,
      });
      const listed = await call(app, 'GET', '/api/v1/api-keys', adminKey);
      const item = (listed.body.items as { id: string; policy?: unknown }[]).find((k) => k.id === id);
      expect(item?.policy).toEqual({
        serverId: mainServer,
        allowedFrom: ['notify@example.com', '*@example.org'],
        rateLimitPerMinute: 10,
      });
      const audit = await app.store.readLog<{ action: string; target: string; detail?: Record<string, unknown> }>(
        'audit',
        { limit: 50 },
      );
      const created = audit.find((e) => e.entry.action === 'api_key.create' && e.entry.target === `api_key:${id}`);
      expect(created?.entry.detail).toMatchObject({ serverId: mainServer, rateLimitPerMinute: 10 });
    });

    it('a rotated key passes its policy on to its successor', async () => {
      const { id } = await createKey({ rateLimitPerMinute: 2, serverId: otherServer });
      const rotated = await call(app, 'POST', `/api/v1/api-keys/${id}/rotate`, adminKey, { graceSeconds: 0 });
      expect(rotated.status).toBe(201);
      expect(rotated.body.policy).toEqual({ rateLimitPerMinute: 2, serverId: otherServer });
      const successor = rotated.body.key as string;
      expect((await call(app, 'POST', '/api/v1/messages', successor, message({ serverId: mainServer }))).status).toBe(
        403,
      );
    });

    it('refuses a bad policy with 400 naming the field and creates no key', async () => {
      const before = ((await call(app, 'GET', '/api/v1/api-keys', adminKey)).body.items as unknown[]).length;
      for (const [policy, field] of [
        [{ rateLimitPerMinute: 0 }, 'rateLimitPerMinute'],
        [{ rateLimitPerMinute: 1.5 }, 'rateLimitPerMinute'],
        [{ allowedFrom: ['not an address'] }, 'allowedFrom[0]'],
        [{ serverId: 'srv_missing' }, 'serverId'],
      ] as const) {
        const r = await call(app, 'POST', '/api/v1/api-keys', adminKey, { name: 'bad', scopes: ['send'], ...policy });
        expect(r.status, JSON.stringify(r.body)).toBe(400);
        expect(r.body.error?.details.map((d) => d.field)).toContain(field);
      }
      expect(((await call(app, 'GET', '/api/v1/api-keys', adminKey)).body.items as unknown[]).length).toBe(before);
    });

    it('a key bound to a server gets 403 forbidden for another server and sends through its own by default', async () => {
      const { key } = await createKey({ serverId: otherServer });
      const refused = await call(app, 'POST', '/api/v1/messages', key, message({ serverId: mainServer }));
      expect(refused.status).toBe(403);
      expect(refused.body.error?.code).toBe('forbidden');
      const sent = await call(app, 'POST', '/api/v1/messages', key, message());
      expect(sent.status).toBe(202);
      expect((await call(app, 'GET', `/api/v1/messages/${String(sent.body.id)}`, key)).body.serverId).toBe(otherServer);
    });

    it('allowedFrom refuses a server that sends as an address the key may not use', async () => {
      const { key } = await createKey({ allowedFrom: ['*@other.example'] });
      expect((await call(app, 'POST', '/api/v1/messages', key, message())).status).toBe(403);
      expect((await call(app, 'POST', '/api/v1/messages', key, message({ serverId: otherServer }))).status).toBe(202);
    });

    it('rateLimitPerMinute answers 429 with Retry-After past the limit', async () => {
      const { key } = await createKey({ rateLimitPerMinute: 3 });
      const answers: Answer[] = [];
      for (let i = 0; i < 5; i++) answers.push(await call(app, 'POST', '/api/v1/messages', key, message()));
      expect(answers.map((a) => a.status)).toEqual([202, 202, 202, 429, 429]);
      expect(answers[3]!.body.error?.code).toBe('rate_limited');
      expect(Number(answers[3]!.retryAfter)).toBeGreaterThan(0);
      expect(Number(answers[3]!.retryAfter)).toBeLessThanOrEqual(60);
      // Another key is not affected.
      const { key: other } = await createKey({ rateLimitPerMinute: 3 });
      expect((await call(app, 'POST', '/api/v1/messages', other, message())).status).toBe(202);
    });

    it('the /admin/api-keys form sets a policy and the page shows it', async () => {
      const admin = await app.browserSession('sysadmin');
      const bad = await admin.postForm('/admin/api-keys', {
        name: 'form key',
        scopes: ['send'],
        rateLimitPerMinute: '-2',
      });
      expect(bad.res.status).toBe(400);
      expect(bad.text).toContain('rateLimitPerMinute');
      const { res } = await admin.postForm('/admin/api-keys', {
        name: 'form key',
        scopes: ['send'],
        serverId: mainServer,
        allowedFrom: 'a@example.com, *@example.net',
        rateLimitPerMinute: '7',
      });
      expect(res.status).toBe(303);
      const { text } = await admin.get('/admin/api-keys');
      expect(text).toContain('7/min');
      const listed = (await call(app, 'GET', '/api/v1/api-keys', adminKey)).body.items as {
        name: string;
        policy?: unknown;
      }[];
      expect(listed.find((k) => k.name === 'form key')?.policy).toEqual({
        serverId: mainServer,
        allowedFrom: ['a@example.com', '*@example.net'],
        rateLimitPerMinute: 7,
      });
    });
  });
}

describe.skipIf(!redisUrlForTests())('API key rateLimitPerMinute across instances', () => {
  let first: TestApp;
  let second: TestApp;

  beforeAll(async () => {
    first = await startTestApp({ store: 'redis' });
    second = await startTestApp({ shareWith: first });
    await first.services.mail.servers.create(
      createServerInput.parse({
        name: 'Main',
        fromAddress: 'notify@example.com',
        host: '127.0.0.1',
        port: 2525,
        authMethod: 'none',
        isDefault: true,
      }),
      system,
    );
  });

  afterAll(async () => {
    await second?.close();
    await first?.close();
  });

  it('counts the messages of one key on every instance together', async () => {
    const adminKey = await first.apiKey(['admin']);
    const created = await call(first, 'POST', '/api/v1/api-keys', adminKey, {
      name: 'shared',
      scopes: ['send'],
      rateLimitPerMinute: 4,
    });
    const key = created.body.key as string;
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++)
      statuses.push((await call(i % 2 === 0 ? first : second, 'POST', '/api/v1/messages', key, message())).status);
    expect(statuses.filter((s) => s === 202)).toHaveLength(4);
    expect(statuses.slice(4)).toEqual([429, 429, 429, 429]);
  });
});
