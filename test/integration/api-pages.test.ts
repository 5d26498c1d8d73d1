import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../fakes/app.js';

// Every JSON list pages the same way: ?limit= (default 50, at most 500) and ?cursor=, answering {items, next} with
// `next` absent on the last page; walking the pages yields every item once.

let app: TestApp;
let admin: string;
beforeAll(async () => {
  app = await startTestApp();
  admin = await app.apiKey(['admin', 'send']);
});
afterAll(async () => {
  await app?.close();
});

async function get(path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${app.url}${path}`, { headers: { authorization: `Bearer ${admin}` } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function post(path: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${app.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(res.status, await res.clone().text()).toBeLessThan(300);
  return (await res.json()) as Record<string, unknown>;
}

/** Walks a list with `limit`, checking each page's size and that `next` is absent only on the last. */
async function walk(path: string, limit: number): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < 100; i++) {
    const sep = path.includes('?') ? '&' : '?';
    const { status, body } = await get(
      `${path}${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
    );
    expect(status).toBe(200);
    const items = body.items as Array<{ id: string }>;
    expect(items.length).toBeLessThanOrEqual(limit);
    ids.push(...items.map((x) => x.id));
    if (body.next === undefined) return ids;
    expect(items).toHaveLength(limit);
    cursor = body.next as string;
  }
  throw new Error('no last page');
}

describe('JSON lists are pages', () => {
  it('notification channels: 7 channels in pages of 3, each once, next absent on the last page', async () => {
    const created: string[] = [];
    for (let i = 0; i < 7; i++)
      created.push(
        (await post('/api/v1/notification-channels', { name: `c${i}`, type: 'email', to: `ops${i}@example.com` }))
          .id as string,
      );
    const ids = await walk('/api/v1/notification-channels', 3);
    expect([...ids].sort()).toEqual([...created].sort());
    expect(new Set(ids).size).toBe(7);
    expect((await get('/api/v1/notification-channels')).body.next).toBeUndefined();
  });

  it('messages: the queue a page at a time, filtered by status', async () => {
    const server = await post('/api/v1/smtp-servers', {
      name: 'pages',
      fromAddress: 'pages@example.com',
      host: '127.0.0.1',
      port: 2525,
    });
    const sent: string[] = [];
    for (let i = 0; i < 5; i++)
      sent.push(
        (await post('/api/v1/messages', { serverId: server.id, to: 'a@example.net', subject: `m${i}`, text: 'x' }))
          .id as string,
      );
    const ids = await walk('/api/v1/messages', 2);
    expect([...ids].sort()).toEqual([...sent].sort());
    const queued = await walk('/api/v1/messages?status=queued', 10);
    expect(queued.length).toBe(5);
    expect((await walk('/api/v1/messages?status=failed', 10)).length).toBe(0);
  });

  it('SMTP servers: pages with the settings beside them, and a search by name', async () => {
    const made: string[] = [];
    for (let i = 0; i < 6; i++)
      made.push(
        (
          await post('/api/v1/smtp-servers', {
            name: i % 2 ? `Support ${i}` : `Sales ${i}`,
            fromAddress: `s${i}@example.com`,
            host: '127.0.0.1',
            port: 2525,
          })
        ).id as string,
      );
    const all = await walk('/api/v1/smtp-servers', 4);
    for (const id of made) expect(all).toContain(id);
    expect(new Set(all).size).toBe(all.length);
    const first = await get('/api/v1/smtp-servers?limit=2');
    expect(first.body.settings).toMatchObject({ outgoingEnabled: true });
    const support = await walk('/api/v1/smtp-servers?search=support', 2);
    expect([...support].sort()).toEqual([made[1], made[3], made[5]].sort());
  });

  it('API keys and OAuth integrations: pages of 2, each item once', async () => {
    for (let i = 0; i < 4; i++) await app.apiKey(['send'], `k${i}`);
    const keys = await walk('/api/v1/api-keys', 2);
    expect(keys.length).toBeGreaterThanOrEqual(5);
    expect(new Set(keys).size).toBe(keys.length);
    const made: string[] = [];
    for (let i = 0; i < 3; i++)
      made.push(
        (
          await post('/api/v1/oauth-integrations', {
            name: `i${i}`,
            provider: 'google',
            clientId: `client-${i}`,
            clientSecret: `secret-${i}-0123456789`,
          })
        ).id as string,
      );
    expect([...(await walk('/api/v1/oauth-integrations', 2))].sort()).toEqual([...made].sort());
  });

  it('audit: limit and cursor, with before as an alias of cursor', async () => {
    const first = await get('/api/v1/audit?limit=2');
    expect((first.body.items as unknown[]).length).toBe(2);
    const next = first.body.next as string;
    expect(next).toBeTruthy();
    const byCursor = await get(`/api/v1/audit?limit=2&cursor=${next}`);
    const byBefore = await get(`/api/v1/audit?limit=2&before=${next}`);
    expect(byCursor.body.items).toEqual(byBefore.body.items);
  });

  it('refuses a limit above 500 or below 1 and a malformed cursor, naming the field', async () => {
    for (const [query, field] of [
      ['limit=501', 'limit'],
      ['limit=0', 'limit'],
      ['cursor=%20bad%20', 'cursor'],
    ] as const) {
      const { status, body } = await get(`/api/v1/notification-channels?${query}`);
      expect(status).toBe(400);
      const details = (body.error as { details: Array<{ field: string }> }).details;
      expect(details.map((d) => d.field)).toContain(field);
    }
  });
});
