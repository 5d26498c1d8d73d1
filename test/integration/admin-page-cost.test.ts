import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { messageInput } from '../../src/mail/compose.js';
import { startTestApp, type HttpSession, type TestApp } from '../fakes/app.js';
import { onPath } from '../fakes/binaries.js';
import { freePort } from '../fakes/net.js';
import { bytesSent, commandsBetween, commandStats } from '../fakes/redis-commands.js';
import { redisUrlForTests } from '../fakes/redis.js';
import { spawnRedisServer } from '../fakes/redis-server.js';

// The servers, integrations, API keys and mail queue pages cost Redis the same number of commands, and about the same
// bytes, whatever the size of what they list: each reads one page of rows (and for the queue, the indexes' sizes),
// never the collection or a whole index. The data grows fourfold between two views; a page that read every row, or
// one document per row beyond its page, would cost hundreds of commands more, and one that read a whole index of
// ids (one command) four times the bytes. A Redis of its own, so its counts are this test's only.

const binary = onPath('redis-server');
const actor = { type: 'system' as const, id: 'test' };
const PAGES = ['/admin/smtp-servers', '/admin/oauth-integrations', '/admin/api-keys', '/admin/mail-queue'] as const;

describe.runIf(binary && redisUrlForTests())('admin pages on Redis cost the same at any size', () => {
  let redis: ChildProcess;
  let dir: string;
  let url: string;
  let app: TestApp;
  let admin: HttpSession;
  let serverId: string;
  let servers = 1;
  let integrations = 0;
  let keys = 0;
  let messages = 0;

  beforeAll(async () => {
    const port = await freePort();
    dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-page-cost-'));
    redis = await spawnRedisServer(binary!, port, dir);
    url = `redis://127.0.0.1:${port}`;
    app = await startTestApp({ store: 'redis', env: { REDIS_URL: url } });
    admin = await app.browserSession('sysadmin');
    serverId = (
      await app.services.mail.servers.create(
        { name: 'Relay', fromAddress: 'relay@example.com', host: '127.0.0.1', port: 2525 },
        { actor },
      )
    ).id;
  });
  afterAll(async () => {
    await app?.close();
    redis?.kill('SIGKILL');
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function grow(to: { servers: number; integrations: number; keys: number; messages: number }): Promise<void> {
    for (; servers < to.servers; servers++)
      await app.services.mail.servers.create(
        { name: `Mailbox ${servers}`, fromAddress: `m${servers}@example.com`, host: '127.0.0.1', port: 2525 },
        { actor },
      );
    for (; integrations < to.integrations; integrations++)
      await app.services.oauthIntegrations.create(
        {
          name: `Tenant ${integrations}`,
          provider: 'microsoft',
          tenant: `tenant${integrations}.onmicrosoft.com`,
          clientId: randomBytes(8).toString('hex'),
          clientSecret: randomBytes(16).toString('base64url'),
        },
        actor,
      );
    for (; keys < to.keys; keys++) await app.services.apiKeys.create({ name: `app ${keys}`, scopes: ['send'], actor });
    const input = messageInput.parse({ to: 'customer@example.net', subject: 'Ticket updated', text: 'x' });
    const batch: Promise<unknown>[] = [];
    for (; messages < to.messages; messages++) batch.push(app.services.mail.queue.enqueue({ ...input, serverId }));
    await Promise.all(batch);
  }

  /** Redis commands and bytes read of one view of each page, after a first view (scripts loaded, caches warm). */
  async function costs(): Promise<Record<string, { commands: number; bytes: number }>> {
    const out: Record<string, { commands: number; bytes: number }> = {};
    for (const page of PAGES) {
      expect((await admin.get(page)).res.status).toBe(200);
      const bytesBefore = await bytesSent(url);
      const before = await commandStats(url);
      const { res } = await admin.get(page);
      expect(res.status).toBe(200);
      const used = commandsBetween(before, await commandStats(url)).filter(([name]) => name !== 'info');
      out[page] = {
        commands: used.reduce((sum, [, calls]) => sum + calls, 0),
        bytes: (await bytesSent(url)) - bytesBefore,
      };
    }
    return out;
  }

  it('reads a page of rows at 210 and 840 servers, 60 and 240 integrations and keys, 2,100 and 8,400 messages alike', async () => {
    // Above 2,000 waiting messages the queue's summary counts them from its indexes (below, it reads them all).
    // The keys page offers the first 200 servers: both sizes have more.
    await grow({ servers: 210, integrations: 60, keys: 60, messages: 2_100 });
    const small = await costs();
    await grow({ servers: 840, integrations: 240, keys: 240, messages: 8_400 });
    const large = await costs();
    for (const page of PAGES) {
      const [before, after] = [small[page]!, large[page]!];
      expect(before.commands, page).toBeGreaterThan(0);
      expect(before.commands, page).toBeLessThan(300);
      expect(after.commands, page).toBe(before.commands);
      // Names and ids differ a little in length from one page to the next; whole indexes would be 4 times more.
      expect(after.bytes, page).toBeLessThan(before.bytes * 1.25);
    }
  });

  it('walks the integrations and the keys a page at a time, each once', async () => {
    const walk = async (start: string, row: RegExp) => {
      const seen: string[] = [];
      let next: string | null = start;
      while (next) {
        const { text } = await admin.get(next);
        const rows = [...text.matchAll(row)].map((m) => m[1]!);
        expect(rows.length).toBeLessThanOrEqual(50);
        seen.push(...rows);
        next = /href="([^"]*cursor=[^"]+)" rel="next"/.exec(text)?.[1]?.replaceAll('&amp;', '&') ?? null;
      }
      return seen;
    };
    const listed = await walk('/admin/oauth-integrations', /<a href="\/admin\/oauth-integrations\/(oi_[^"]+)">/g);
    expect(new Set(listed).size).toBe(listed.length);
    expect(listed.sort()).toEqual((await app.services.oauthIntegrations.list()).map((d) => d.id).sort());
    const shown = await walk('/admin/api-keys', /<tr data-key-id="([^"]+)">/g);
    expect(new Set(shown).size).toBe(shown.length);
    expect(shown.sort()).toEqual((await app.services.apiKeys.list()).map((k) => k.id).sort());
  });

  it('offers the first 200 servers once on the keys page, however many keys it shows', async () => {
    const { text } = await admin.get('/admin/api-keys');
    const choices = /<datalist id="key-server-choices">(.*?)<\/datalist>/s.exec(text)?.[1] ?? '';
    expect(choices.match(/<option value="srv_/g)?.length).toBe(200);
    expect(text.match(/list="key-server-choices"/g)?.length).toBe(50);
    // The create form's select and the list: two offers of 200, not one per key.
    expect(text.match(/<option value="srv_/g)?.length).toBe(400);
  });

  it("a server's form offers the first 200 of 240 integrations and takes an id, keeping the one it names", async () => {
    const all = (await app.services.oauthIntegrations.list()).map((d) => d.id);
    const last = all.at(-1)!;
    const server = await app.services.mail.servers.create(
      {
        name: 'Mailbox',
        fromAddress: 'box@example.com',
        host: 'smtp.office365.com',
        port: 587,
        tls: true,
        authMethod: 'oauth2',
        oauthIntegrationId: last,
      },
      { actor },
    );
    const { text } = await admin.get(`/admin/smtp-servers/${server.id}`);
    expect(text).toMatch(
      new RegExp(
        `<input id="oauthIntegrationId" name="oauthIntegrationId" type="text" list="integration-choices"[^>]*value="${last}"`,
      ),
    );
    const offered = [
      ...(/<datalist id="integration-choices">(.*?)<\/datalist>/s.exec(text)?.[1] ?? '').matchAll(/value="([^"]+)"/g),
    ].map((m) => m[1]);
    expect(offered).toEqual([...all.slice(0, 200), last]);
  });
});
