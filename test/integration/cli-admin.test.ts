import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { redisUrlForTests } from '../fakes/redis.js';
import { cliInProcess } from '../fakes/cli.js';

/** create-admin, api-keys, sessions revoke-all and audit export, run in-process through the real dispatcher. */

const cli = cliInProcess;

describe('admin CLI on the embedded store', () => {
  let dir: string;
  let env: Record<string, string>;
  const password = `cli-${randomBytes(9).toString('base64url')}`;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-cli-'));
    env = {
      MAILGATE_DATA_DIR: dir,
      MAILGATE_ENCRYPTION_KEYS: `c1:${randomBytes(32).toString('base64')}`,
      MAILGATE_SESSION_SECRETS: randomBytes(32).toString('base64url'),
      MAILGATE_LOG_LEVEL: 'silent',
    };
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('creates an admin, a key; both work in the service; revokes; exports the audit trail without secrets', async () => {
    const made = await cli(
      { ...env, MAILGATE_ADMIN_PASSWORD: password },
      'create-admin',
      '--email',
      'Ops@Example.test',
    );
    expect(made.code).toBe(0);
    expect(made.stdout).toContain('Created sysadmin ops@example.test');
    expect(made.stdout + made.stderr).not.toContain(password);
    const dup = await cli({ ...env, MAILGATE_ADMIN_PASSWORD: password }, 'create-admin', '--email', 'ops@example.test');
    expect(dup.code).toBe(1);
    expect(dup.stderr).toContain('already exists');
    const short = await cli({ ...env, MAILGATE_ADMIN_PASSWORD: 'short' }, 'create-admin', '--email', 'x@example.test');
    expect(short.code).toBe(1);

    const created = await cli(env, 'api-keys', 'create', '--name', 'ci bot', '--scopes', 'send,admin');
    expect(created.code).toBe(0);
    const key = created.stdout.trim();
    expect(key).toMatch(/^mgk_[A-Za-z0-9_-]{43}$/);
    expect((await cli(env, 'api-keys', 'create', '--name', 'x', '--scopes', 'root')).code).toBe(2);

    const listed = await cli(env, 'api-keys', 'list');
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain('ci bot');
    expect(listed.stdout).toContain(key.slice(0, 10));
    expect(listed.stdout).not.toContain(key);
    const id = /key_[A-Za-z0-9_-]+/.exec(listed.stdout)![0];

    const app = await startTestApp({ env });
    try {
      const session = app.anonymousSession();
      await session.login('ops@example.test', password);
      expect((await session.fetch('/admin/api-keys')).status).toBe(200);
      expect((await fetch(`${app.url}/api/v1/audit`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(
        200,
      );
    } finally {
      await app.close();
    }

    const rotated = await cli(env, 'api-keys', 'rotate', id, '--grace-hours', '0');
    expect(rotated.code).toBe(0);
    const successor = rotated.stdout.trim();
    expect(successor).toMatch(/^mgk_[A-Za-z0-9_-]{43}$/);
    expect(rotated.stderr).toContain(`to replace ${id}`);
    expect((await cli(env, 'api-keys', 'rotate', id)).code).toBe(1);

    const revoked = await cli(env, 'api-keys', 'revoke', id);
    expect(revoked.code).toBe(0);
    expect((await cli(env, 'api-keys', 'list')).stdout).toMatch(/revoked/);

    const exported = await cli(env, 'audit', 'export', '--since', new Date(Date.now() - 3600_000).toISOString());
    expect(exported.code).toBe(0);
    const lines = exported.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { action: string; at: string; actor: { type: string } });
    expect(lines.map((l) => l.action)).toEqual(
      expect.arrayContaining(['user.create', 'api_key.create', 'auth.login', 'api_key.revoke']),
    );
    const times = lines.map((l) => l.at);
    expect([...times].sort()).toEqual(times);
    expect(lines.find((l) => l.action === 'api_key.revoke')?.actor.type).toBe('cli');
    expect(exported.stdout).not.toContain(password);
    expect(exported.stdout).not.toContain(key);
    expect(exported.stdout).not.toContain(successor);
    expect(lines.map((l) => l.action)).toContain('api_key.rotate');
    const future = await cli(env, 'audit', 'export', '--since', '2999-01-01');
    expect(future.stdout).toBe('');
    expect((await cli(env, 'audit', 'export', '--since', 'yesterday')).code).toBe(2);
  });
});

describe.skipIf(!redisUrlForTests())('admin CLI against running instances on Redis', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ store: 'redis' });
  });
  afterAll(async () => {
    await app?.close();
  });

  it('sessions revoke-all logs every browser out; api-keys revoke takes effect on the next request', async () => {
    const s = await app.browserSession('admin');
    const key = await app.apiKey(['admin'], 'cli-victim');
    expect((await s.fetch('/admin/audit')).status).toBe(200);
    const out = await cli(app.env, 'sessions', 'revoke-all');
    expect(out.code).toBe(0);
    expect((await s.fetch('/admin/audit')).status).toBe(303);

    const id = (await app.services.apiKeys.list()).find((k) => k.name === 'cli-victim')!.id;
    expect((await fetch(`${app.url}/api/v1/audit`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
    expect((await cli(app.env, 'api-keys', 'revoke', id)).code).toBe(0);
    expect((await fetch(`${app.url}/api/v1/audit`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(401);
  });
});
