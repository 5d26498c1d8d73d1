import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/admin/audit.js';
import type { Actor } from '../../src/admin/types.js';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { cliInProcess } from '../fakes/cli.js';
import { redisUrlForTests } from '../fakes/redis.js';

// The audit log's filters (actor, action, time) are the same on the page, the API, the page's export and the
// CLI export; the page shows names instead of ids, labelled details, error codes, and times in the reader's zone.

const ALICE: Actor = { type: 'user', id: 'u_alice', email: 'alice@example.test', role: 'sysadmin' };
const BOB: Actor = { type: 'user', id: 'u_bob', email: 'bob@example.test', role: 'admin' };
const KEY: Actor = { type: 'api_key', id: 'key_1', name: 'deploy bot', scopes: ['admin'] };
const T0 = Date.UTC(2026, 0, 10, 12, 0);
const HOUR = 3_600_000;

describe.skipIf(!redisUrlForTests())('audit filters and export', () => {
  let app: TestApp;
  let now = T0;
  let adminKey: string;
  let serverId: string;

  beforeAll(async () => {
    app = await startTestApp({ store: 'redis', clock: () => now });
    adminKey = await app.apiKey(['admin'], 'auditor');
    serverId = (
      await app.services.mail.servers.create(
        { name: 'Billing relay', fromAddress: 'billing@example.com', host: '127.0.0.1', port: 2525 },
        { actor: ALICE },
      )
    ).id;
    const record = async (at: number, actor: Actor, action: string, detail?: Record<string, string | number>) => {
      now = at;
      await app.services.audit.record({
        actor,
        action,
        target: `smtp_server:${serverId}`,
        outcome: detail?.code ? 'failure' : 'success',
        ...(detail ? { detail } : {}),
      });
    };
    await record(T0 + 1 * HOUR, ALICE, 'smtp_server.update', { fields: 'host' });
    await record(T0 + 2 * HOUR, BOB, 'mail.flush', { messages: 3 });
    await record(T0 + 3 * HOUR, ALICE, 'smtp_server.test', { code: 'auth_failed', durationMs: 120 });
    await record(T0 + 4 * HOUR, KEY, 'smtp_server.update', { fields: 'port' });
    await record(T0 + 5 * HOUR, ALICE, 'auth.login');
    now = T0 + 6 * HOUR;
  });
  afterAll(() => app?.close());

  const api = async (query: string) => {
    const res = await fetch(`${app.url}/api/v1/audit${query}`, { headers: { authorization: `Bearer ${adminKey}` } });
    expect(res.status).toBe(200);
    return (await res.json()) as { items: AuditRecord[]; next?: string };
  };
  const summary = (items: AuditRecord[]) =>
    items.map((e) => `${e.actor.type === 'user' ? e.actor.email : e.actor.id} ${e.action}`);

  it('filters the API by actor, action prefix and time range, and pages with the cursor', async () => {
    expect(summary((await api('?actor=ALICE&action=smtp_server')).items)).toEqual([
      'alice@example.test smtp_server.test',
      'alice@example.test smtp_server.update',
      'alice@example.test smtp_server.create',
    ]);
    expect(summary((await api('?action=smtp_server.update')).items)).toEqual([
      'key_1 smtp_server.update',
      'alice@example.test smtp_server.update',
    ]);
    expect(summary((await api('?actor=deploy')).items)).toEqual(['key_1 smtp_server.update']);
    const from = new Date(T0 + 2 * HOUR).toISOString();
    const to = new Date(T0 + 4 * HOUR).toISOString();
    expect(summary((await api(`?from=${from}&to=${to}`)).items)).toEqual([
      'alice@example.test smtp_server.test',
      'bob@example.test mail.flush',
    ]);
    const first = await api('?action=smtp_server&limit=2');
    expect(first.items).toHaveLength(2);
    const second = await api(`?action=smtp_server&limit=2&cursor=${first.next}`);
    expect(summary(second.items)).toEqual([
      'alice@example.test smtp_server.update',
      'alice@example.test smtp_server.create',
    ]);
    expect(second.next).toBeUndefined();
    const bad = await fetch(`${app.url}/api/v1/audit?from=yesterday`, {
      headers: { authorization: `Bearer ${adminKey}` },
    });
    expect(bad.status).toBe(400);
  });

  it('exports from the page with the same filters, oldest first, as JSON lines', async () => {
    const admin = await app.browserSession('admin');
    const res = await admin.fetch('/admin/audit/export?actor=alice&action=smtp_server');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-disposition')).toContain('attachment');
    const lines = (await res.text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as AuditRecord);
    expect(summary(lines)).toEqual([
      'alice@example.test smtp_server.create',
      'alice@example.test smtp_server.update',
      'alice@example.test smtp_server.test',
    ]);
    // Times typed on the page are in the reader's zone: 21:00 in Tokyo is 12:00 UTC.
    const zoned = await admin.fetch(
      `/admin/audit/export?from=${encodeURIComponent('2026-01-11T00:00')}&to=${encodeURIComponent('2026-01-11T02:00')}`,
      { headers: { cookie: `${admin.cookieHeader()}; mailgate_tz=Asia/Tokyo` } },
    );
    const zonedLines = (await zoned.text()).trim().split('\n');
    expect(zonedLines.map((l) => (JSON.parse(l) as AuditRecord).action)).toEqual([
      'smtp_server.test',
      'smtp_server.update',
    ]);
  });

  it('exports from the CLI with the same filters', async () => {
    const out = await cliInProcess(
      { ...app.env },
      'audit',
      'export',
      '--since',
      new Date(T0).toISOString(),
      '--until',
      new Date(T0 + 5 * HOUR).toISOString(),
      '--actor',
      'alice',
    );
    expect(out.code, out.stderr).toBe(0);
    const actions = out.stdout
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as AuditRecord).action);
    expect(actions).toEqual(['smtp_server.create', 'smtp_server.update', 'smtp_server.test']);
  });

  it('shows names with links, labelled details with the error code, and local times with the ISO value on hover', async () => {
    const admin = await app.browserSession('admin');
    const { text } = await admin.get('/admin/audit?action=smtp_server.test', {
      headers: { cookie: `${admin.cookieHeader()}; mailgate_tz=Asia/Tokyo` },
    });
    const row = text.slice(text.indexOf('<tbody>'), text.indexOf('</tbody>'));
    expect(row).toContain(`<a href="/admin/smtp-servers/${serverId}">Billing relay</a>`);
    expect(row).toContain('<dt>code</dt><dd>auth_failed</dd>');
    expect(row).toContain('<dt>durationMs</dt><dd>120</dd>');
    expect(row).not.toContain('[redacted]');
    expect(row).not.toContain('{&quot;');
    const iso = new Date(T0 + 3 * HOUR).toISOString();
    expect(row).toMatch(new RegExp(`<time datetime="${iso}" title="${iso}">11/01/2026, 00:00:00 GMT\\+9</time>`));
  });
});
